/*
 * A minimal Apache WSS4J 1.6 client of Azərsu's GetBillingStatement e-service.
 *
 * Java callers of the service usually sign with WSS4J, directly or through
 * Apache CXF; this is the direct way, written as WSS4J's own examples do: a
 * WSSecHeader, a WSSecTimestamp, and a WSSecSignature over Body and Timestamp
 * (RSA-SHA256, SHA-256 digests, exclusive C14N) with the key reference the
 * caller chooses.  The answer -- a statement, another Status or a Fault; all
 * are signed -- is checked with WSS4J's WSSecurityEngine against a truststore
 * holding the CA: its signature must cover the very Body and Timestamp of the
 * envelope and come from the service's certificate.
 *
 * The test suite compiles and runs this file against a live server
 * (tests/test_wss4j.py); README.md in this folder says how to run it.
 */

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.math.BigDecimal;
import java.net.HttpURLConnection;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.regex.Pattern;

import javax.xml.XMLConstants;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.transform.OutputKeys;
import javax.xml.transform.Transformer;
import javax.xml.transform.TransformerFactory;
import javax.xml.transform.dom.DOMSource;
import javax.xml.transform.stream.StreamResult;

import org.apache.ws.security.WSConstants;
import org.apache.ws.security.WSDataRef;
import org.apache.ws.security.WSEncryptionPart;
import org.apache.ws.security.WSSConfig;
import org.apache.ws.security.WSSecurityEngine;
import org.apache.ws.security.WSSecurityEngineResult;
import org.apache.ws.security.WSSecurityException;
import org.apache.ws.security.components.crypto.AlgorithmSuite;
import org.apache.ws.security.components.crypto.Crypto;
import org.apache.ws.security.components.crypto.CryptoFactory;
import org.apache.ws.security.handler.RequestData;
import org.apache.ws.security.message.WSSecHeader;
import org.apache.ws.security.message.WSSecSignature;
import org.apache.ws.security.message.WSSecTimestamp;
import org.apache.ws.security.message.token.Timestamp;
import org.apache.ws.security.util.WSSecurityUtil;
import org.apache.xml.security.signature.XMLSignature;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;

public final class AzersuStatementClient {

    static final String SOAP_NS = WSConstants.URI_SOAP11_ENV;
    static final String SERVICE_NS = "http://azersu.az/egov/billing-statement/v1";
    static final String RSA_SHA256 = XMLSignature.ALGO_ID_SIGNATURE_RSA_SHA256;
    static final String SHA256 = WSConstants.SHA256;
    static final String EXC_C14N = WSConstants.C14N_EXCL_OMIT_COMMENTS;
    /** The service's certificate names it; another holder of a certificate of the CA can't pass. */
    static final String DEFAULT_SIGNER = "billing-statement.azersu.az";

    /** The key reference forms, by the names CXF's signatureKeyIdentifier property uses. */
    static final Map<String, Integer> KEY_REFERENCES = new LinkedHashMap<>();

    static {
        KEY_REFERENCES.put("DirectReference", WSConstants.BST_DIRECT_REFERENCE);
        KEY_REFERENCES.put("IssuerSerial", WSConstants.ISSUER_SERIAL);
        KEY_REFERENCES.put("X509KeyIdentifier", WSConstants.X509_KEY_IDENTIFIER);
        KEY_REFERENCES.put("SKIKeyIdentifier", WSConstants.SKI_KEY_IDENTIFIER);
        KEY_REFERENCES.put("Thumbprint", WSConstants.THUMBPRINT_IDENTIFIER);
    }

    /** Exit statuses, as `azersu-statement call` has them. */
    static final int OK = 0;
    static final int OTHER_STATUS = 1;
    static final int USAGE = 2;
    static final int FAULT = 3;
    static final int UNREACHABLE = 4;
    static final int NOT_VERIFIED = 5;

    /** Standard output in UTF-8 whatever the locale: the statement is Azerbaijani. */
    static final PrintStream OUT = new PrintStream(System.out, true, StandardCharsets.UTF_8);

    private AzersuStatementClient() {
    }

    public static void main(String[] args) {
        System.exit(run(args));
    }

    static int run(String[] args) {
        Map<String, String> options;
        try {
            options = parseOptions(args);
        } catch (IllegalArgumentException e) {
            System.err.println(e.getMessage());
            System.err.println("usage: AzersuStatementClient --keystore portal.p12 --truststore ca.p12 "
                    + "--code CODE [--fin FIN] [--lang az|en|ru] [--url URL] [--alias portal] "
                    + "[--key-reference " + String.join("|", KEY_REFERENCES.keySet()) + "] "
                    + "[--signer CN] [--save-request FILE] [--save-response FILE]\n"
                    + "   or: AzersuStatementClient --verify SAVED-ANSWER --truststore ca.p12\n"
                    + "passwords: KEYSTORE_PASSWORD and TRUSTSTORE_PASSWORD in the environment");
            return USAGE;
        }
        try {
            if (options.containsKey("verify")) {
                return verifySaved(options);
            }
            String reference = options.getOrDefault("key-reference", "DirectReference");
            Integer keyIdentifier = KEY_REFERENCES.get(reference);
            if (keyIdentifier == null) {
                throw new IllegalArgumentException("unknown --key-reference " + reference);
            }
            Crypto keystore = CryptoFactory.getInstance(keystoreProperties(options));
            Document request = unsignedRequest(
                    options.get("code"), options.get("fin"), options.getOrDefault("lang", "az"));
            sign(request, keystore, options.getOrDefault("alias", "portal"),
                    requiredEnv("KEYSTORE_PASSWORD"), keyIdentifier);
            OUT.println("request: signed with key reference " + reference);
            Crypto truststore = CryptoFactory.getInstance(truststoreProperties(options));
            Pattern signer = signerPattern(options);
            return exchange(request, options, answer -> verifyAnswer(answer, truststore, signer));
        } catch (IllegalArgumentException e) {
            System.err.println(e.getMessage());
            return USAGE;
        } catch (Exception e) {
            System.err.println("could not sign the request: " + e);
            return USAGE;
        }
    }

    /** Verify and print an answer saved earlier (--save-response), without calling. */
    static int verifySaved(Map<String, String> options) throws Exception {
        Crypto truststore = CryptoFactory.getInstance(truststoreProperties(options));
        Element body;
        try {
            Document response = parse(Files.readAllBytes(Paths.get(options.get("verify"))));
            body = verifyAnswer(response, truststore, signerPattern(options));
        } catch (Exception e) {
            OUT.println("answer: NOT VERIFIED: " + e);
            return NOT_VERIFIED;
        }
        return printAnswer(body);
    }

    /** Checks an answer's WS-Security header; returns the verified Body. */
    interface AnswerVerifier {
        Element verify(Document answer) throws Exception;
    }

    /**
     * Post the signed request, verify the answer and print it; return the exit status.
     * Shared with CxfPropertiesClient, which signs and verifies through WSS4J's WSHandler.
     */
    static int exchange(Document request, Map<String, String> options, AnswerVerifier verifier)
            throws Exception {
        byte[] payload = serialize(request);
        save(options.get("save-request"), payload);
        byte[] answer;
        try {
            answer = post(options.getOrDefault("url", "http://127.0.0.1:8080/soap"), payload);
        } catch (IOException e) {
            System.err.println("the service can't be reached: " + e);
            return UNREACHABLE;
        }
        save(options.get("save-response"), answer);
        Document response;
        Element body;
        try {
            response = parse(answer);
            body = verifier.verify(response);
        } catch (Exception e) {
            OUT.println("answer: NOT VERIFIED: " + e);
            return NOT_VERIFIED;
        }
        return printAnswer(body);
    }

    // --- the request --------------------------------------------------------------------------

    /** The unsigned envelope the WSDL describes: document/literal wrapped, SOAP 1.1. */
    static Document unsignedRequest(String code, String fin, String language) throws Exception {
        if (code == null) {
            throw new IllegalArgumentException("--code is required");
        }
        Document doc = newDocumentBuilderFactory().newDocumentBuilder().newDocument();
        Element envelope = doc.createElementNS(SOAP_NS, "soapenv:Envelope");
        envelope.setAttributeNS(XMLConstants.XMLNS_ATTRIBUTE_NS_URI, "xmlns:soapenv", SOAP_NS);
        doc.appendChild(envelope);
        envelope.appendChild(doc.createElementNS(SOAP_NS, "soapenv:Header"));
        Element body = doc.createElementNS(SOAP_NS, "soapenv:Body");
        envelope.appendChild(body);
        Element operation = doc.createElementNS(SERVICE_NS, "bs:GetBillingStatement");
        operation.setAttributeNS(XMLConstants.XMLNS_ATTRIBUTE_NS_URI, "xmlns:bs", SERVICE_NS);
        body.appendChild(operation);
        child(operation, "SubscriberCode", code);
        if (fin != null) {
            child(operation, "CitizenFin", fin);
        }
        if (language != null) {
            child(operation, "Language", language);
        }
        return doc;
    }

    private static void child(Element parent, String name, String text) {
        Element element = parent.getOwnerDocument().createElementNS(SERVICE_NS, "bs:" + name);
        element.setTextContent(text);
        parent.appendChild(element);
    }

    /** Sign Body and a fresh Timestamp, as the service's policy asks (docs/integration.md). */
    static void sign(Document doc, Crypto crypto, String alias, String password, int keyIdentifier)
            throws WSSecurityException {
        WSSecHeader header = new WSSecHeader();
        header.setMustUnderstand(true);
        header.insertSecurityHeader(doc);

        WSSecTimestamp timestamp = new WSSecTimestamp();
        timestamp.setTimeToLive(300);
        timestamp.build(doc, header);

        WSSecSignature signature = new WSSecSignature();
        signature.setUserInfo(alias, password);
        signature.setKeyIdentifierType(keyIdentifier);
        signature.setSignatureAlgorithm(RSA_SHA256);
        signature.setDigestAlgo(SHA256);
        signature.setSigCanonicalization(EXC_C14N);
        List<WSEncryptionPart> parts = new ArrayList<>();
        parts.add(new WSEncryptionPart(WSConstants.ELEM_BODY, SOAP_NS, ""));
        parts.add(new WSEncryptionPart(WSConstants.TIMESTAMP_TOKEN_LN, WSConstants.WSU_NS, ""));
        signature.setParts(parts);
        signature.build(doc, crypto, header);
    }

    // --- the answer ---------------------------------------------------------------------------

    /**
     * Check the answer's WS-Security header with WSS4J and return its verified Body.
     *
     * WSS4J checks the signature, the Timestamp's times and that the signer's certificate
     * chains to the truststore and matches the signer pattern; what it doesn't check is what
     * the signature covers, so this does (as CXF's CryptoCoverageChecker would): the Body and
     * the Timestamp of this envelope, the very elements, not others with the same Id.
     */
    static Element verifyAnswer(Document response, Crypto truststore, Pattern signer)
            throws WSSecurityException {
        RequestData data = new RequestData();
        data.setWssConfig(WSSConfig.getNewInstance());
        data.setSigCrypto(truststore);
        data.setSubjectCertConstraints(List.of(signer));
        data.setAlgorithmSuite(policySuite());
        Element security = WSSecurityUtil.getSecurityHeader(response, null);
        if (security == null) {
            throw new WSSecurityException("the answer has no wsse:Security header");
        }
        List<WSSecurityEngineResult> results =
                new WSSecurityEngine().processSecurityHeader(security, data);
        return checkCoverage(response, results);
    }

    /** What the service's policy allows, as a WSS4J AlgorithmSuite for the answer. */
    static AlgorithmSuite policySuite() {
        AlgorithmSuite suite = new AlgorithmSuite();
        suite.addSignatureMethod(RSA_SHA256);
        suite.addDigestAlgorithm(SHA256);
        suite.addC14nAlgorithm(EXC_C14N);
        suite.addTransformAlgorithm(EXC_C14N);
        suite.setMinimumAsymmetricKeyLength(2048);
        return suite;
    }

    /** Require one signature covering this envelope's Body and Timestamp; print what WSS4J found. */
    static Element checkCoverage(Document response, List<WSSecurityEngineResult> results)
            throws WSSecurityException {
        Element body = WSSecurityUtil.findBodyElement(response);
        WSSecurityEngineResult signed = null;
        Timestamp timestamp = null;
        for (WSSecurityEngineResult result : results) {
            int action = (Integer) result.get(WSSecurityEngineResult.TAG_ACTION);
            if (action == WSConstants.SIGN) {
                if (signed != null) {
                    throw new WSSecurityException("the answer carries two signatures");
                }
                signed = result;
            } else if (action == WSConstants.TS) {
                timestamp = (Timestamp) result.get(WSSecurityEngineResult.TAG_TIMESTAMP);
            }
        }
        if (signed == null || timestamp == null) {
            throw new WSSecurityException("the answer needs a signature and a Timestamp");
        }
        X509Certificate certificate =
                (X509Certificate) signed.get(WSSecurityEngineResult.TAG_X509_CERTIFICATE);
        OUT.println("answer: verified by WSS4J, signer "
                + certificate.getSubjectX500Principal().getName());
        OUT.println("answer: signature method " + signed.get(WSSecurityEngineResult.TAG_SIGNATURE_METHOD));
        boolean bodySigned = false;
        boolean timestampSigned = false;
        @SuppressWarnings("unchecked")
        List<WSDataRef> references =
                (List<WSDataRef>) signed.get(WSSecurityEngineResult.TAG_DATA_REF_URIS);
        for (WSDataRef reference : references) {
            Element element = reference.getProtectedElement();
            bodySigned |= element == body;
            timestampSigned |= element == timestamp.getElement();
            OUT.println("answer: signed " + reference.getName() + " digest "
                    + reference.getDigestAlgorithm());
        }
        if (!bodySigned || !timestampSigned) {
            throw new WSSecurityException("the signature does not cover this Body and Timestamp");
        }
        OUT.println("answer: timestamp " + timestamp.getCreated().toInstant() + " to "
                + timestamp.getExpires().toInstant());
        return body;
    }

    /** Print a statement, another Status, or a Fault; return the exit status. */
    static int printAnswer(Element body) {
        Element first = firstChild(body);
        if (first != null && SOAP_NS.equals(first.getNamespaceURI())
                && "Fault".equals(first.getLocalName())) {
            Element code = childNamed(first, null, "faultcode");
            String text = code == null ? "" : code.getTextContent().trim();
            int colon = text.indexOf(':');
            String prefix = colon < 0 ? null : text.substring(0, colon);
            String namespace = code == null ? null : code.lookupNamespaceURI(prefix);
            OUT.println("Fault: {" + namespace + "}" + text.substring(colon + 1));
            Element string = childNamed(first, null, "faultstring");
            OUT.println("faultstring: " + (string == null ? "" : string.getTextContent()));
            return FAULT;
        }
        if (first == null || !"GetBillingStatementResponse".equals(first.getLocalName())) {
            OUT.println("answer: NOT VERIFIED: unexpected Body content");
            return NOT_VERIFIED;
        }
        String status = text(first, "Status");
        OUT.println("Status: " + status);
        OUT.println("Message: " + text(first, "Message"));
        Element statement = childNamed(first, SERVICE_NS, "Statement");
        if (statement == null) {
            return "OK".equals(status) ? NOT_VERIFIED : OTHER_STATUS;
        }
        OUT.println("StatementNumber: " + text(statement, "StatementNumber"));
        OUT.println("Issuer: " + text(statement, "Issuer"));
        Element subscriber = childNamed(statement, SERVICE_NS, "Subscriber");
        OUT.println("Subscriber: " + text(subscriber, "Code") + " | " + text(subscriber, "LastName")
                + " | " + text(subscriber, "FirstName") + " | " + text(subscriber, "Patronymic"));
        OUT.println("Address: " + text(subscriber, "Address"));
        Element periods = childNamed(statement, SERVICE_NS, "Periods");
        for (Node n = periods == null ? null : periods.getFirstChild(); n != null;
                n = n.getNextSibling()) {
            if (n instanceof Element) {
                Element period = (Element) n;
                OUT.printf("Period: %s-%02d %s %s %s%n", text(period, "Year"),
                        Integer.parseInt(text(period, "Month")),
                        decimal(period, "ConsumptionM3"), decimal(period, "InvoicedAmount"),
                        decimal(period, "PaidAmount"));
            }
        }
        Element totals = childNamed(statement, SERVICE_NS, "Totals");
        OUT.println("Totals: " + decimal(totals, "ConsumptionM3") + " "
                + decimal(totals, "InvoicedAmount") + " " + decimal(totals, "PaidAmount")
                + " " + text(statement, "Currency"));
        return "OK".equals(status) ? OK : OTHER_STATUS;
    }

    /** Money and consumption as BigDecimal, never a double. */
    private static BigDecimal decimal(Element parent, String name) {
        return new BigDecimal(text(parent, name));
    }

    private static String text(Element parent, String name) {
        Element element = parent == null ? null : childNamed(parent, SERVICE_NS, name);
        return element == null ? "" : element.getTextContent();
    }

    private static Element firstChild(Element parent) {
        for (Node n = parent.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n instanceof Element) {
                return (Element) n;
            }
        }
        return null;
    }

    private static Element childNamed(Element parent, String namespace, String name) {
        for (Node n = parent.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n instanceof Element && name.equals(n.getLocalName())
                    && (namespace == null ? n.getNamespaceURI() == null
                            : namespace.equals(n.getNamespaceURI()))) {
                return (Element) n;
            }
        }
        return null;
    }

    // --- plumbing -----------------------------------------------------------------------------

    /** A namespace-aware parser that refuses a DOCTYPE (no entities, nothing fetched). */
    static DocumentBuilderFactory newDocumentBuilderFactory() throws Exception {
        DocumentBuilderFactory factory = DocumentBuilderFactory.newInstance();
        factory.setNamespaceAware(true);
        factory.setFeature(XMLConstants.FEATURE_SECURE_PROCESSING, true);
        factory.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        factory.setExpandEntityReferences(false);
        return factory;
    }

    static Document parse(byte[] xml) throws Exception {
        return newDocumentBuilderFactory().newDocumentBuilder().parse(new ByteArrayInputStream(xml));
    }

    /** The document's bytes exactly as signed: no indentation is added. */
    static byte[] serialize(Document doc) throws Exception {
        Transformer transformer = TransformerFactory.newInstance().newTransformer();
        transformer.setOutputProperty(OutputKeys.ENCODING, "UTF-8");
        transformer.setOutputProperty(OutputKeys.INDENT, "no");
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        transformer.transform(new DOMSource(doc), new StreamResult(out));
        return out.toByteArray();
    }

    /** POST the envelope as SOAP 1.1; return the answer of a 200 or a 500 (a Fault). */
    static byte[] post(String url, byte[] payload) throws IOException {
        HttpURLConnection connection = (HttpURLConnection) new URL(url).openConnection();
        connection.setRequestMethod("POST");
        connection.setConnectTimeout(10_000);
        connection.setReadTimeout(30_000);
        connection.setDoOutput(true);
        connection.setRequestProperty("Content-Type", "text/xml; charset=utf-8");
        connection.setRequestProperty("SOAPAction", "\"GetBillingStatement\"");
        connection.setFixedLengthStreamingMode(payload.length);
        try (OutputStream out = connection.getOutputStream()) {
            out.write(payload);
        }
        int status = connection.getResponseCode();
        OUT.println("answer: HTTP " + status);
        InputStream in = status >= 400 ? connection.getErrorStream() : connection.getInputStream();
        if (in == null || (status != 200 && status != 500)) {
            throw new IOException("HTTP " + status + " " + connection.getResponseMessage());
        }
        try (InputStream answer = in) {
            return answer.readAllBytes();
        }
    }

    static void save(String path, byte[] data) throws IOException {
        if (path != null) {
            Files.write(Paths.get(path), data);
        }
    }

    /**
     * The signer's subject must name the service: its RFC 2253 form (most specific name first,
     * as WSS4J matches it) starts with the service's CN.  The pattern of cxf-wss4j-in.properties.
     */
    static Pattern signerPattern(Map<String, String> options) {
        String name = options.getOrDefault("signer", DEFAULT_SIGNER);
        return Pattern.compile("CN=" + Pattern.quote(name) + "([^A-Za-z0-9.-].*)?");
    }

    /** Merlin, WSS4J's keystore-backed Crypto: the caller's key and certificate. */
    static Properties keystoreProperties(Map<String, String> options) {
        Properties p = new Properties();
        p.setProperty("org.apache.ws.security.crypto.provider",
                "org.apache.ws.security.components.crypto.Merlin");
        p.setProperty("org.apache.ws.security.crypto.merlin.keystore.type",
                options.getOrDefault("keystore-type", "PKCS12"));
        p.setProperty("org.apache.ws.security.crypto.merlin.keystore.file", required(options, "keystore"));
        p.setProperty("org.apache.ws.security.crypto.merlin.keystore.password",
                requiredEnv("KEYSTORE_PASSWORD"));
        p.setProperty("org.apache.ws.security.crypto.merlin.keystore.alias",
                options.getOrDefault("alias", "portal"));
        return p;
    }

    /** Merlin with only a truststore: the CA that issues the service's certificate. */
    static Properties truststoreProperties(Map<String, String> options) {
        Properties p = new Properties();
        p.setProperty("org.apache.ws.security.crypto.provider",
                "org.apache.ws.security.components.crypto.Merlin");
        p.setProperty("org.apache.ws.security.crypto.merlin.truststore.type",
                options.getOrDefault("truststore-type", "PKCS12"));
        p.setProperty("org.apache.ws.security.crypto.merlin.truststore.file",
                required(options, "truststore"));
        p.setProperty("org.apache.ws.security.crypto.merlin.truststore.password",
                requiredEnv("TRUSTSTORE_PASSWORD"));
        p.setProperty("org.apache.ws.security.crypto.merlin.load.cacerts", "false");
        return p;
    }

    static String required(Map<String, String> options, String name) {
        String value = options.get(name);
        if (value == null) {
            throw new IllegalArgumentException("--" + name + " is required");
        }
        return value;
    }

    static String requiredEnv(String name) {
        String value = System.getenv(name);
        if (value == null || value.isEmpty()) {
            throw new IllegalArgumentException(name + " is not set in the environment");
        }
        return value;
    }

    /** Parse "--name value" pairs. */
    static Map<String, String> parseOptions(String[] args) {
        Map<String, String> options = new LinkedHashMap<>();
        for (int i = 0; i < args.length; i += 2) {
            if (!args[i].startsWith("--") || i + 1 >= args.length) {
                throw new IllegalArgumentException("expected --name value, got " + args[i]);
            }
            options.put(args[i].substring(2), args[i + 1]);
        }
        return options;
    }
}
