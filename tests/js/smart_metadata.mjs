// A SMART client library against a running fhir-server: what fhir-kit-client discovers
// (smartAuthMetadata races .well-known/smart-configuration, the CapabilityStatement's
// rest.security and .well-known/openid-configuration), and a read with and without the
// Bearer token. Prints one JSON object for the calling pytest test to check.
//
//   FHIR_BASE=http://127.0.0.1:3000/fhir FHIR_TOKEN=... PATIENT_ID=... node smart_metadata.mjs
import { Client } from 'fhir-kit-client';

const baseUrl = process.env.FHIR_BASE;
if (!baseUrl) {
  console.error('FHIR_BASE is not set');
  process.exit(2);
}
const asText = (meta) => Object.fromEntries(
  Object.entries(meta).filter(([, v]) => v !== undefined).map(([k, v]) => [k, String(v)]));

const anonymous = new Client({ baseUrl });
const out = {};
out.smartAuthMetadata = asText(await anonymous.smartAuthMetadata());
const capability = await anonymous.capabilityStatement();
out.security = capability.rest?.[0]?.security ?? null;
out.smartConfiguration = await anonymous.request('.well-known/smart-configuration');

const patient = process.env.PATIENT_ID;
if (patient) {
  try {
    await anonymous.read({ resourceType: 'Patient', id: patient });
    out.anonymousRead = 200;
  } catch (error) {
    out.anonymousRead = error.response?.status ?? String(error);
  }
  const client = new Client({ baseUrl, bearerToken: process.env.FHIR_TOKEN });
  const read = await client.read({ resourceType: 'Patient', id: patient });
  out.read = { resourceType: read.resourceType, id: read.id };
}
console.log(JSON.stringify(out));
