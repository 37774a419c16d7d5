{{/* Names */}}
{{- define "faceswap.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "faceswap.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "faceswap.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels: root context as .root, component name as .component */}}
{{- define "faceswap.selectorLabels" -}}
app.kubernetes.io/name: {{ include "faceswap.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "faceswap.labels" -}}
helm.sh/chart: {{ include "faceswap.chart" .root }}
{{ include "faceswap.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: faceswap
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Image: .root, .gpu (bool) - GPU pods run the CUDA variant */}}
{{- define "faceswap.image" -}}
{{- $tag := default .root.Chart.AppVersion .root.Values.image.tag }}
{{- if .gpu }}{{ $tag = printf "%s%s" $tag .root.Values.image.cudaTagSuffix }}{{ end }}
{{- printf "%s:%s" .root.Values.image.repository $tag }}
{{- end }}

{{/* Service accounts: serviceAccount.name / orchestratorName, else generated ("default" if not created) */}}
{{- define "faceswap.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}{{ default (include "faceswap.fullname" .) .Values.serviceAccount.name }}
{{- else }}{{ default "default" .Values.serviceAccount.name }}{{ end }}
{{- end }}

{{- define "faceswap.orchestratorServiceAccountName" -}}
{{- if .Values.serviceAccount.create }}{{ default (printf "%s-orchestrator" (include "faceswap.fullname" .)) .Values.serviceAccount.orchestratorName }}
{{- else }}{{ default "default" .Values.serviceAccount.orchestratorName }}{{ end }}
{{- end }}

{{/* Whether a service runs as a Deployment: .root, .name. With kubernetesJobs.enabled, training and
conversion run as Jobs and the trainer / converter Deployments would only hold GPUs idle. */}}
{{- define "faceswap.serviceEnabled" -}}
{{- $svc := index .root.Values.services .name }}
{{- if and $svc.enabled (not (and .root.Values.kubernetesJobs.enabled (has .name (list "trainer" "converter")))) }}true{{ end }}
{{- end }}

{{/* The address env variable a service is reached by (faceswap/config.py ENV_DOCS) */}}
{{- define "faceswap.addrVar" -}}
{{- if eq . "orchestrator" }}FACESWAP_JOBS_ADDR{{ else }}{{ printf "FACESWAP_%s_ADDR" (upper .) }}{{ end }}
{{- end }}

{{/* Object storage secret: name and keys */}}
{{- define "faceswap.s3Secret" -}}
{{- if eq .Values.storage.mode "external" -}}
{{- default (printf "%s-s3" (include "faceswap.fullname" .)) .Values.storage.external.existingSecret }}
{{- else -}}
{{- default (printf "%s-minio" (include "faceswap.fullname" .)) .Values.storage.minio.existingSecret }}
{{- end }}
{{- end }}

{{- define "faceswap.s3AccessKeyKey" -}}
{{- if eq .Values.storage.mode "external" }}{{ .Values.storage.external.accessKeyKey }}{{ else }}root-user{{ end }}
{{- end }}

{{- define "faceswap.s3SecretKeyKey" -}}
{{- if eq .Values.storage.mode "external" }}{{ .Values.storage.external.secretKeyKey }}{{ else }}root-password{{ end }}
{{- end }}

{{- define "faceswap.s3Endpoint" -}}
{{- if eq .Values.storage.mode "external" }}{{ .Values.storage.external.endpoint }}{{ else }}http://{{ include "faceswap.fullname" . }}-minio:9000{{ end }}
{{- end }}

{{/* Job database secret: name and key */}}
{{- define "faceswap.dbSecret" -}}
{{- if eq .Values.database.mode "external" -}}
{{- default (printf "%s-db" (include "faceswap.fullname" .)) .Values.database.external.existingSecret }}
{{- else -}}
{{- default (printf "%s-postgresql" (include "faceswap.fullname" .)) .Values.database.postgresql.existingSecret }}
{{- end }}
{{- end }}

{{- define "faceswap.dbUrlKey" -}}
{{- if eq .Values.database.mode "external" }}{{ .Values.database.external.urlKey }}{{ else }}{{ .Values.database.postgresql.urlKey }}{{ end }}
{{- end }}

{{/* A secret value kept across upgrades: .root, .name (Secret), .key, .value (explicit wins) */}}
{{- define "faceswap.secretValue" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .name }}
{{- if .value }}{{ .value }}
{{- else if and $existing $existing.data (hasKey $existing.data .key) }}{{ index $existing.data .key | b64dec }}
{{- else }}{{ randAlphaNum 32 }}
{{- end }}
{{- end }}

{{/* Environment shared by every faceswap container (services, migrations, workers) */}}
{{- define "faceswap.env" -}}
- name: FACESWAP_STORAGE
  value: s3
- name: FACESWAP_BUCKET
  value: {{ .Values.storage.bucket | quote }}
- name: S3_ENDPOINT
  value: {{ include "faceswap.s3Endpoint" . | quote }}
- name: S3_REGION
  value: {{ .Values.storage.region | quote }}
- name: S3_SECURE
  value: {{ and (eq .Values.storage.mode "external") .Values.storage.external.secure | quote }}
- name: S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "faceswap.s3Secret" . }}
      key: {{ include "faceswap.s3AccessKeyKey" . }}
- name: S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "faceswap.s3Secret" . }}
      key: {{ include "faceswap.s3SecretKeyKey" . }}
- name: FACESWAP_DB_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "faceswap.dbSecret" . }}
      key: {{ include "faceswap.dbUrlKey" . }}
- name: FACESWAP_DATA_DIR
  value: /data
- name: FACESWAP_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: FACESWAP_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: FACESWAP_BIND_HOST
  value: {{ .Values.grpc.bindHost | quote }}
- name: FACESWAP_MAX_CONNECTION_AGE_S
  value: {{ .Values.grpc.maxConnectionAgeSeconds | quote }}
{{- if .Values.tls.enabled }}
- name: FACESWAP_TLS_CERT
  value: /etc/faceswap/tls/tls.crt
- name: FACESWAP_TLS_KEY
  value: /etc/faceswap/tls/tls.key
{{- if .Values.tls.mutual }}
- name: FACESWAP_TLS_CA
  value: /etc/faceswap/tls/ca.crt
{{- end }}
{{- end }}
{{- $root := . }}
{{- range $name, $svc := .Values.services }}
{{- /* No faceswap process calls the live service: its clients are outside. */}}
{{- if and (ne $name "live") (include "faceswap.serviceEnabled" (dict "root" $root "name" $name)) }}
- name: {{ include "faceswap.addrVar" $name }}
  {{- if $root.Values.grpc.clientLoadBalancing }}
  value: "dns:///{{ include "faceswap.fullname" $root }}-{{ $name }}-headless.{{ $root.Release.Namespace }}.svc.{{ $root.Values.clusterDomain }}:{{ $svc.port }}"
  {{- else }}
  value: "{{ include "faceswap.fullname" $root }}-{{ $name }}:{{ $svc.port }}"
  {{- end }}
{{- end }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volumes every faceswap pod mounts: read-only root fs, writable /tmp and /data */}}
{{- define "faceswap.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
- name: data
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ .Values.tls.secretName }}
{{- end }}
{{- end }}

{{- define "faceswap.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /data
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: /etc/faceswap/tls
  readOnly: true
{{- end }}
{{- end }}

{{/* resources with an ephemeral-storage request (the emptyDirs live on the node's disk): .resources, .size */}}
{{- define "faceswap.resources" -}}
{{- $resources := deepCopy (default dict .resources) }}
{{- $requests := default dict $resources.requests }}
{{- if not (hasKey $requests "ephemeral-storage") }}{{ $_ := set $requests "ephemeral-storage" .size }}{{ end }}
{{- $_ := set $resources "requests" $requests }}
{{- toYaml $resources }}
{{- end }}
