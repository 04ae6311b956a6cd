/*
 * The same call as AzersuStatementClient, configured as an Apache CXF client is:
 * by the properties of CXF's WSS4JOutInterceptor (cxf-wss4j-out.properties) and
 * WSS4JInInterceptor (cxf-wss4j-in.properties).
 *
 * CXF's interceptors are thin adapters over WSS4J's WSHandler: they hand the
 * properties to WSHandler.doSenderAction for the request, and for the answer to
 * WSHandler.doReceiverAction, WSSecurityEngine.processSecurityHeader and
 * WSHandler.checkReceiverResultsAnyOrder.  This class is such an adapter without
 * the rest of CXF, so the properties files are exercised by the very WSS4J code
 * a CXF client runs.  What CXF's WSS4JInInterceptor does not check -- that the
 * signature covers the Body and the Timestamp -- a CXF client checks with
 * DefaultCryptoCoverageChecker; here AzersuStatementClient.checkCoverage does it.
 *
 * The crypto properties the interceptor properties name (signaturePropFile) are
 * read from the classpath, as CXF reads them.
 */

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.apache.ws.security.WSSConfig;
import org.apache.ws.security.WSSecurityEngine;
import org.apache.ws.security.WSSecurityEngineResult;
import org.apache.ws.security.WSSecurityException;
import org.apache.ws.security.handler.RequestData;
import org.apache.ws.security.handler.WSHandler;
import org.apache.ws.security.handler.WSHandlerConstants;
import org.apache.ws.security.util.WSSecurityUtil;
import org.w3c.dom.Document;
import org.w3c.dom.Element;

public final class CxfPropertiesClient {

    private CxfPropertiesClient() {
    }

    public static void main(String[] args) {
        System.exit(run(args));
    }

    static int run(String[] args) {
        Map<String, String> options;
        try {
            options = AzersuStatementClient.parseOptions(args);
        } catch (IllegalArgumentException e) {
            System.err.println(e.getMessage());
            System.err.println("usage: CxfPropertiesClient --code CODE [--fin FIN] [--lang az|en|ru] "
                    + "[--url URL] [--out cxf-wss4j-out.properties] [--in cxf-wss4j-in.properties] "
                    + "[--key-reference NAME (replaces signatureKeyIdentifier)] "
                    + "[--save-request FILE] [--save-response FILE]\n"
                    + "the crypto properties they name are read from the classpath");
            return AzersuStatementClient.USAGE;
        }
        try {
            Properties out = load(options.getOrDefault("out", "cxf-wss4j-out.properties"));
            Properties in = load(options.getOrDefault("in", "cxf-wss4j-in.properties"));
            if (options.containsKey("key-reference")) {
                out.setProperty(WSHandlerConstants.SIG_KEY_ID, options.get("key-reference"));
            }
            Document request = AzersuStatementClient.unsignedRequest(
                    options.get("code"), options.get("fin"), options.getOrDefault("lang", "az"));
            new Interceptor(out).handleOutbound(request);
            AzersuStatementClient.OUT.println("request: signed by WSS4J's WSHandler from the "
                    + "WSS4JOutInterceptor properties, key reference "
                    + out.getProperty(WSHandlerConstants.SIG_KEY_ID));
            Interceptor inbound = new Interceptor(in);
            return AzersuStatementClient.exchange(request, options, inbound::handleInbound);
        } catch (IllegalArgumentException e) {
            System.err.println(e.getMessage());
            return AzersuStatementClient.USAGE;
        } catch (Exception e) {
            System.err.println("could not sign the request: " + e);
            return AzersuStatementClient.USAGE;
        }
    }

    static Properties load(String path) throws IOException {
        Properties properties = new Properties();
        try (InputStream in = Files.newInputStream(Paths.get(path))) {
            properties.load(in);
        }
        return properties;
    }

    /** A WSHandler configured by a properties map, as CXF's WSS4J interceptors are. */
    static final class Interceptor extends WSHandler {
        private final Map<String, Object> configuration = new HashMap<>();

        Interceptor(Properties properties) {
            for (String name : properties.stringPropertyNames()) {
                configuration.put(name, properties.getProperty(name));
            }
        }

        /** What WSS4JOutInterceptor does with the outgoing envelope. */
        void handleOutbound(Document envelope) throws WSSecurityException {
            Map<String, Object> message = new HashMap<>();
            RequestData data = new RequestData();
            data.setMsgContext(message);
            List<Integer> actions = new ArrayList<>();
            int action = WSSecurityUtil.decodeAction(
                    getString(WSHandlerConstants.ACTION, message), actions);
            data.setUsername(getString(WSHandlerConstants.USER, message));
            doSenderAction(action, envelope, data, actions, true);
        }

        /** What WSS4JInInterceptor (and DefaultCryptoCoverageChecker) do with the answer. */
        Element handleInbound(Document envelope) throws WSSecurityException {
            Map<String, Object> message = new HashMap<>();
            RequestData data = new RequestData();
            data.setMsgContext(message);
            data.setWssConfig(WSSConfig.getNewInstance());
            decodeAlgorithmSuite(data);
            List<Integer> actions = new ArrayList<>();
            int action = WSSecurityUtil.decodeAction(
                    getString(WSHandlerConstants.ACTION, message), actions);
            doReceiverAction(action, data);
            Element security = WSSecurityUtil.getSecurityHeader(envelope, data.getActor());
            if (security == null) {
                throw new WSSecurityException("the answer has no wsse:Security header");
            }
            List<WSSecurityEngineResult> results =
                    new WSSecurityEngine().processSecurityHeader(security, data);
            if (results == null || !checkReceiverResultsAnyOrder(results, actions)) {
                throw new WSSecurityException("Security processing failed (actions mismatch)");
            }
            return AzersuStatementClient.checkCoverage(envelope, results);
        }

        @Override
        public Object getOption(String key) {
            return configuration.get(key);
        }

        @Override
        @SuppressWarnings("unchecked")
        public Object getProperty(Object message, String key) {
            return ((Map<String, Object>) message).get(key);
        }

        @Override
        @SuppressWarnings("unchecked")
        public void setProperty(Object message, String key, Object value) {
            ((Map<String, Object>) message).put(key, value);
        }

        @Override
        public String getPassword(Object message) {
            return null;
        }

        @Override
        public void setPassword(Object message, String password) {
            throw new UnsupportedOperationException("passwords come from passwordCallbackClass");
        }
    }
}
