{{/*
Chart name (app.kubernetes.io/name): "hospital-backend" unless nameOverride is set.
*/}}
{{- define "hospital-backend.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of every resource. The release "hospital-backend" gives "hospital-backend",
which is what the runbook's commands (deployment/hospital-backend, svc/hospital-backend,
hpa hospital-backend) expect.
*/}}
{{- define "hospital-backend.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "hospital-backend.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels of the server's pods: stable for the life of a release (never add the
version here). The component keeps the migration Job's pod out of the Service, the
PodDisruptionBudget and the HPA's pod set.
*/}}
{{- define "hospital-backend.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hospital-backend.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{/*
Labels every object carries (without the component).
*/}}
{{- define "hospital-backend.baseLabels" -}}
helm.sh/chart: {{ include "hospital-backend.chart" . }}
app.kubernetes.io/name: {{ include "hospital-backend.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "hospital-backend.imageTag" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hospital
{{- end }}

{{/*
Labels of the server's objects.
*/}}
{{- define "hospital-backend.labels" -}}
{{ include "hospital-backend.baseLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "hospital-backend.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{- define "hospital-backend.image" -}}
{{- printf "%s:%s" .Values.image.repository (include "hospital-backend.imageTag" .) }}
{{- end }}

{{- define "hospital-backend.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "hospital-backend.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Environment from the existing Secret (hospital-secrets by default). In cloudnativepg
mode the database variables are the chart's own (hospital-backend.cnpg.env), so the
Secret's are left out.
*/}}
{{- define "hospital-backend.secretEnv" -}}
{{- $secret := required "existingSecret is required (the Secret with PGHOST, PGUSER, PGPASSWORD, PGDATABASE)" .Values.existingSecret }}
{{- $skip := list }}
{{- if include "hospital-backend.cnpg" . }}
{{- $skip = splitList " " (include "hospital-backend.cnpg.ownVariables" .) }}
{{- end }}
{{- range .Values.secretEnv }}
{{- if not (has .name $skip) }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .key }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The non-secret settings as inline env (for the migration hook Job, which runs before
the ConfigMap exists on a first install).
*/}}
{{- define "hospital-backend.configEnv" -}}
{{- range $key, $value := .Values.config }}
- name: {{ $key }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/*
The /tmp volume mount and volume, shared by the Deployment and the Job.
*/}}
{{- define "hospital-backend.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}

{{/*
PromQL label matchers selecting this release's scrape targets (the ServiceMonitor
gives them job=<Service name>).
*/}}
{{- define "hospital-backend.metricSelector" -}}
job="{{ include "hospital-backend.fullname" . }}", namespace="{{ .Release.Namespace }}"
{{- end }}

{{/*
PromQL label matchers selecting this release's server containers in kubelet, cAdvisor
and kube-state-metrics series.
*/}}
{{- define "hospital-backend.containerSelector" -}}
namespace="{{ .Release.Namespace }}", pod=~"{{ include "hospital-backend.fullname" . }}-.*", container="{{ .Chart.Name }}"
{{- end }}

{{/*
Refuse values that would kill in-flight requests on every rollout: the pod must get
more time than the preStop sleep plus the server's own shutdown grace.
*/}}
{{- define "hospital-backend.validate" -}}
{{- $grace := float64 (default "25" .Values.config.SHUTDOWN_GRACE_SECONDS) }}
{{- $needed := addf $grace .Values.lifecycle.preStopSleepSeconds }}
{{- if le (float64 .Values.terminationGracePeriodSeconds) $needed }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be greater than lifecycle.preStopSleepSeconds + config.SHUTDOWN_GRACE_SECONDS (%v)" .Values.terminationGracePeriodSeconds $needed) }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (not (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable)) (not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable)) }}
{{- fail "podDisruptionBudget: set only one of maxUnavailable and minAvailable" }}
{{- end }}
{{- include "hospital-backend.cnpg.validate" . }}
{{- end }}
