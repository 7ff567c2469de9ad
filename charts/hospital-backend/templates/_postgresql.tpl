{{/*
PostgreSQL wiring: `postgresql.mode` external (the existing Secret's PG* keys) or
cloudnativepg (a CloudNativePG Cluster, its Poolers and the `<cluster>-app` Secret).
*/}}

{{- define "hospital-backend.cnpg" -}}
{{- if eq .Values.postgresql.mode "cloudnativepg" }}true{{ end }}
{{- end }}

{{- define "hospital-backend.cnpg.cluster" -}}
{{- $c := .Values.postgresql.cloudnativepg }}
{{- default (printf "%s-db" (include "hospital-backend.fullname" .)) $c.clusterName | trunc 40 | trimSuffix "-" }}
{{- end }}

{{/* The host of a CloudNativePG Service ("rw", "ro", "pooler-rw", "pooler-ro"). */}}
{{- define "hospital-backend.cnpg.host" -}}
{{- printf "%s-%s.%s.svc" (include "hospital-backend.cnpg.cluster" .root) .service .root.Release.Namespace }}
{{- end }}

{{/*
Where the server sends writes and reads: through the Poolers when enabled, else straight
to the Cluster's -rw and -ro Services.
*/}}
{{- define "hospital-backend.cnpg.writeHost" -}}
{{- include "hospital-backend.cnpg.host" (dict "root" . "service" (ternary "pooler-rw" "rw" .Values.postgresql.cloudnativepg.pooler.enabled)) }}
{{- end }}

{{- define "hospital-backend.cnpg.readHost" -}}
{{- include "hospital-backend.cnpg.host" (dict "root" . "service" (ternary "pooler-ro" "ro" .Values.postgresql.cloudnativepg.pooler.enabled)) }}
{{- end }}

{{/*
A libpq URL without a password (libpq takes it from PGPASSWORD, which comes from the
operator's Secret): the manifests never hold a credential. CloudNativePG serves TLS on
PostgreSQL and PgBouncer with its own certificates, so the connection is always encrypted.
*/}}
{{- define "hospital-backend.cnpg.url" -}}
{{- $c := .root.Values.postgresql.cloudnativepg }}
{{- printf "postgresql://%s@%s:5432/%s?sslmode=require" $c.owner .host $c.database }}
{{- end }}

{{/*
The database environment of a container in cloudnativepg mode; `host` is the Service
its DATABASE_URL and PGHOST point to, `read` whether DATABASE_READ_URL is set.
*/}}
{{- define "hospital-backend.cnpg.env" -}}
{{- $secret := printf "%s-app" (include "hospital-backend.cnpg.cluster" .root) }}
- name: PGHOST
  value: {{ .host | quote }}
- name: PGPORT
  value: "5432"
- name: PGSSLMODE
  value: require
{{- range $name, $key := dict "PGUSER" "username" "PGPASSWORD" "password" "PGDATABASE" "dbname" }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $key }}
{{- end }}
- name: DATABASE_URL
  value: {{ include "hospital-backend.cnpg.url" (dict "root" .root "host" .host) | quote }}
{{- if .read }}
- name: DATABASE_READ_URL
  value: {{ include "hospital-backend.cnpg.url" (dict "root" .root "host" (include "hospital-backend.cnpg.readHost" .root)) | quote }}
{{- end }}
{{- end }}

{{/* The variables the chart sets itself in cloudnativepg mode (dropped from secretEnv). */}}
{{- define "hospital-backend.cnpg.ownVariables" -}}
PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE PGSSLMODE DATABASE_URL DATABASE_READ_URL
{{- end }}

{{/*
Connections the server may hold at once, for one side (rw or ro): every pod the
Deployment can have (the HPA's maximum, plus the rolling update's surge) times WORKERS
times the connections of one worker.
*/}}
{{- define "hospital-backend.cnpg.pods" -}}
{{- $pods := ternary .Values.autoscaling.maxReplicas .Values.replicaCount .Values.autoscaling.enabled | int }}
{{- $surge := 0 }}
{{- with .Values.strategy.rollingUpdate }}
{{- if and (hasKey . "maxSurge") (not (kindIs "string" .maxSurge)) }}
{{- $surge = int .maxSurge }}
{{- end }}
{{- end }}
{{- add $pods $surge }}
{{- end }}

{{- define "hospital-backend.cnpg.writeConnections" -}}
{{- $c := .Values.postgresql.cloudnativepg }}
{{- $workers := int (default "1" .Values.config.WORKERS) }}
{{- $pool := int (default "10" .Values.config.DB_POOL_MAX) }}
{{- mul (include "hospital-backend.cnpg.pods" . | int) $workers (add $pool $c.extraConnectionsPerWorker) }}
{{- end }}

{{- define "hospital-backend.cnpg.readConnections" -}}
{{- $workers := int (default "1" .Values.config.WORKERS) }}
{{- $pool := int (default "10" .Values.config.DB_READ_POOL_MAX) }}
{{- mul (include "hospital-backend.cnpg.pods" . | int) $workers $pool }}
{{- end }}

{{/*
Refuse a cloudnativepg configuration that cannot work: more server connections than
max_connections leaves pods without a connection (PostgreSQL refuses them; through
PgBouncer in session mode they would queue without end), and read replicas without a
replica have no -ro endpoint.
*/}}
{{- define "hospital-backend.cnpg.validate" -}}
{{- if include "hospital-backend.cnpg" . }}
{{- $c := .Values.postgresql.cloudnativepg }}
{{- if and $c.readFromReplicas (lt (int $c.instances) 2) }}
{{- fail (printf "postgresql.cloudnativepg.readFromReplicas needs instances >= 2 (got %v): with one instance there is no replica behind the -ro service" $c.instances) }}
{{- end }}
{{- $max := int (default "100" $c.parameters.max_connections) }}
{{- $poolers := ternary (int $c.pooler.instances) 0 $c.pooler.enabled }}
{{- $write := add (include "hospital-backend.cnpg.writeConnections" . | int) $c.reservedConnections $poolers }}
{{- if gt $write $max }}
{{- fail (printf "connection budget: %s pods x WORKERS x (DB_POOL_MAX + extraConnectionsPerWorker) = %s, plus reservedConnections (%v) and one per pooler instance (%v), is %v, above postgresql.cloudnativepg.parameters.max_connections (%v); raise max_connections or lower autoscaling.maxReplicas, WORKERS or DB_POOL_MAX" (include "hospital-backend.cnpg.pods" .) (include "hospital-backend.cnpg.writeConnections" .) $c.reservedConnections $poolers $write $max) }}
{{- end }}
{{- if $c.backup.enabled }}
{{- if not $c.backup.destinationPath }}
{{- fail "postgresql.cloudnativepg.backup.enabled needs backup.destinationPath (e.g. s3://bucket/path)" }}
{{- end }}
{{- if not $c.backup.s3Credentials.secretName }}
{{- fail "postgresql.cloudnativepg.backup.enabled needs backup.s3Credentials.secretName (the Secret with the object store's keys)" }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
