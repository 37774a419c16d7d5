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

{{/* Service accounts */}}
{{- define "faceswap.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}{{ include "faceswap.fullname" . }}{{ else }}default{{ end }}
{{- end }}

{{- define "faceswap.orchestratorServiceAccountName" -}}
{{- if .Values.serviceAccount.create }}{{ include "faceswap.fullname" . }}-orchestrator{{ else }}default{{ end }}
{{- end }}

{{/* The address env variable a service is reached by (services/common/config.py ENV_DOCS) */}}
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
{{- printf "%s-postgresql" (include "faceswap.fullname" .) }}
{{- end }}
{{- end }}

{{- define "faceswap.dbUrlKey" -}}
{{- if eq .Values.database.mode "external" }}{{ .Values.database.external.urlKey }}{{ else }}db-url{{ end }}
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
{{- $root := . }}
{{- range $name, $svc := .Values.services }}
{{- if $svc.enabled }}
- name: {{ include "faceswap.addrVar" $name }}
  {{- if $root.Values.grpc.clientLoadBalancing }}
  value: "dns:///{{ include "faceswap.fullname" $root }}-{{ $name }}-headless.{{ $root.Release.Namespace }}.svc.cluster.local:{{ $svc.port }}"
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
{{- end }}

{{- define "faceswap.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /data
{{- end }}
