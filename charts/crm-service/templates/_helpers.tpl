{{/*
Entry point for an application chart: `{{ include "crm-service.all" . }}` in one template file.
*/}}
{{- define "crm-service.all" -}}
{{- include "crm-service.validate" . -}}
{{- include "crm-service.configmap" . }}
{{- include "crm-service.serviceaccount" . }}
{{- include "crm-service.service" . }}
{{- include "crm-service.deployment" . }}
{{- include "crm-service.hpa" . }}
{{- include "crm-service.pdb" . }}
{{- include "crm-service.networkpolicy" . }}
{{- include "crm-service.servicemonitor" . }}
{{- include "crm-service.migration" . }}
{{- end -}}

{{- define "crm-service.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "crm-service.selectorLabels" -}}
app.kubernetes.io/name: {{ include "crm-service.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "crm-service.labels" -}}
{{ include "crm-service.selectorLabels" . }}
app.kubernetes.io/part-of: crm
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 }}
{{- end -}}

{{/* Server pods. The component label keeps migration pods out of the Service's endpoints. */}}
{{- define "crm-service.serverSelectorLabels" -}}
{{ include "crm-service.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "crm-service.image" -}}
{{- $global := (.Values.global).image | default dict -}}
{{- $registry := .Values.image.registry | default $global.registry -}}
{{- $ref := .Values.image.repository -}}
{{- if $registry }}{{ $ref = printf "%s/%s" (trimSuffix "/" $registry) $ref }}{{ end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $ref .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref (.Values.image.tag | default $global.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{- define "crm-service.metricsSeparate" -}}
{{- if ne (int .Values.metrics.port) (int .Values.port) }}true{{ end -}}
{{- end -}}

{{- define "crm-service.metricsPortName" -}}
{{- if include "crm-service.metricsSeparate" . }}metrics{{ else }}{{ .Values.protocol }}{{ end -}}
{{- end -}}

{{/*
Non-secret environment as a map. Precedence, lowest first: built-in defaults (what a service
deployed alone next to an in-namespace NATS needs), global.env, the service's env, the ports.
CRM_STREAM_REPLICAS (every stream, the dead-letter stream, key-value buckets) follows
global.nats.streamReplicas: the NATS cluster's size, 3 unless an environment says otherwise.
*/}}
{{- define "crm-service.envMap" -}}
{{- $replicas := (((.Values.global).nats).streamReplicas | default 3) -}}
{{- $builtin := dict "CRM_LOG_LEVEL" "info" "CRM_NATS_URL" "tls://nats:4222" "CRM_STREAM_REPLICAS" (toString $replicas) -}}
{{- $env := merge (deepCopy (.Values.env | default dict)) (deepCopy ((.Values.global).env | default dict)) $builtin -}}
{{- $_ := set $env (ternary "CRM_GRPC_PORT" "CRM_HTTP_PORT" (eq .Values.protocol "grpc")) (toString .Values.port) -}}
{{- if .Values.nats.credentialsSecret -}}
{{- $_ := set $env "CRM_NATS_USER" (include "crm-service.name" .) -}}
{{- end -}}
{{- if include "crm-service.metricsSeparate" . -}}
{{- $_ := set $env "CRM_METRICS_PORT" (toString .Values.metrics.port) -}}
{{- end -}}
{{- toYaml $env -}}
{{- end -}}

{{/* Secret references as container env entries; only names and keys, never values. */}}
{{- define "crm-service.secretEnv" -}}
{{- $refs := merge (deepCopy (.Values.secretEnv | default dict)) (deepCopy ((.Values.global).secretEnv | default dict)) -}}
{{- if .Values.database.enabled -}}
{{- $_ := set $refs "CRM_DATABASE_URL" (dict "name" .Values.database.secretName "key" .Values.database.secretKey) -}}
{{- end -}}
{{- if .Values.nats.credentialsSecret -}}
{{- $_ := set $refs "CRM_NATS_PASSWORD" (dict "name" .Values.nats.credentialsSecret "key" (include "crm-service.name" .)) -}}
{{- end -}}
{{- if .Values.nats.caSecret -}}
{{- $_ := set $refs "CRM_NATS_CA_PEM" (dict "name" .Values.nats.caSecret "key" "ca.crt") -}}
{{- end -}}
{{- range $name, $ref := $refs }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.name }}
      key: {{ $ref.key }}
{{- end -}}
{{- end -}}

{{/* The one container spec shared by the server and the migration Job. */}}
{{- define "crm-service.containerBase" -}}
image: {{ include "crm-service.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- end -}}

{{- define "crm-service.podBase" -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  # readOnlyRootFilesystem: the only writable path is a small scratch /tmp.
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
{{- end -}}

{{/* Fail at render time on combinations the schema cannot express well. */}}
{{- define "crm-service.validate" -}}
{{- if not .Values.image.repository -}}
{{- fail "image.repository is required" -}}
{{- end -}}
{{- if and .Values.database.enabled (not .Values.database.secretName) -}}
{{- fail "database.secretName is required when database.enabled" -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) -}}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" -}}
{{- end -}}
{{- end -}}
