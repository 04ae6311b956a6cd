#!/usr/bin/env node
// A minimal node-soap client of the Azərsu billing-statement service.
//
// It reads the service's WSDL, signs the request with node-soap's own
// WSSecurityCert (its defaults: a signed wsu:Timestamp and Body, RSA-SHA256,
// SHA-256 digests, exclusive C14N, the certificate as a BinarySecurityToken)
// and prints the answer as JSON.  node-soap does not verify the answer's
// signature: keep the raw answer (--save-response) and check it, or verify
// the saved Statement with `azersu-statement verify`.
//
//   node client.js --url http://127.0.0.1:8080/soap --key portal.key --cert portal.pem \
//       --code 100000000 --fin X9SCKS7 [--lang az] [--save-response answer.xml]
'use strict';

const fs = require('node:fs');
const { parseArgs } = require('node:util');
const soap = require('soap');

const USAGE =
  'usage: client.js --url URL --key KEY.pem --cert CERT.pem --code CODE [--fin FIN] ' +
  '[--lang az|en|ru] [--save-response FILE]';

async function main() {
  const { values } = parseArgs({
    options: {
      url: { type: 'string', default: 'http://127.0.0.1:8080/soap' },
      key: { type: 'string' },
      cert: { type: 'string' },
      code: { type: 'string' },
      fin: { type: 'string' },
      lang: { type: 'string' },
      'save-response': { type: 'string' },
      'save-request': { type: 'string' },
      'wssecurity-options': { type: 'string', default: '{}' },
    },
  });
  if (!values.key || !values.cert || !values.code) {
    console.error(USAGE);
    return 2;
  }

  const client = await soap.createClientAsync(`${values.url}?wsdl`);
  // Post to the address given, not to the one the WSDL names.
  client.setEndpoint(values.url);
  client.setSecurity(
    new soap.WSSecurityCert(
      fs.readFileSync(values.key, 'utf8'),
      fs.readFileSync(values.cert, 'utf8'),
      '', // the key's password: none
      JSON.parse(values['wssecurity-options']), // {} keeps node-soap's defaults
    ),
  );

  const request = { SubscriberCode: values.code };
  if (values.fin) request.CitizenFin = values.fin;
  if (values.lang) request.Language = values.lang;

  if (values['save-request']) {
    // The envelope exactly as node-soap sends it, signed.
    client.on('request', (xml) => fs.writeFileSync(values['save-request'], xml));
  }

  let result;
  let rawResponse;
  try {
    [result, rawResponse] = await client.GetBillingStatementAsync(request);
  } catch (error) {
    // A SOAP Fault: node-soap rejects with the parsed Fault in error.root.
    const fault = error.root?.Envelope?.Body?.Fault;
    if (!fault) throw error;
    if (values['save-response'] && error.body) fs.writeFileSync(values['save-response'], error.body);
    console.error(`SOAP Fault ${fault.faultcode}: ${fault.faultstring}`);
    return 3;
  }
  if (values['save-response']) fs.writeFileSync(values['save-response'], rawResponse);
  console.log(JSON.stringify(result, null, 2));
  return result.Status === 'OK' ? 0 : 1;
}

main().then(
  (status) => {
    process.exitCode = status;
  },
  (error) => {
    console.error(error.stack || String(error));
    process.exitCode = 4;
  },
);
