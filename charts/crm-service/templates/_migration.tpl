{{/*
The migration Job is a pre-install,pre-upgrade hook, so it runs before the release's regular
resources exist: it cannot use the ConfigMap or the ServiceAccount, and the service's
NetworkPolicy does not cover it yet. Hence inline env, the namespace's default ServiceAccount with
no token, and its own hook NetworkPolicy created first (lower weight) for namespaces that deny by
default.
*/}}
{{- define "crm-service.migrationSelectorLabels" -}}
{{ include "crm-service.selectorLabels" . }}
app.kubernetes.io/component: migration
{{- end -}}

{{- define "crm-service.migration" }}
{{- if and .Values.database.enabled .Values.migration.enabled }}
{{- if .Values.networkPolicy.enabled }}
{{- $rules := fromYaml (include "crm-service.egressRules" .) }}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "crm-service.name" . }}-migrate
  labels:
    {{- include "crm-service.labels" . | nindent 4 }}
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "-10"
    helm.sh/hook-delete-policy: before-hook-creation
spec:
  podSelector:
    matchLabels:
      {{- include "crm-service.migrationSelectorLabels" . | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress: []
  egress:
    - {{ toYaml $rules.dns | indent 6 | trim }}
    - {{ toYaml $rules.postgres | indent 6 | trim }}
    - {{ toYaml $rules.otlp | indent 6 | trim }}
{{- end }}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ include "crm-service.name" . }}-migrate
  labels:
    {{- include "crm-service.labels" . | nindent 4 }}
    app.kubernetes.io/component: migration
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "0"
    # Keep a failed Job for its logs; the next attempt replaces it.
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  backoffLimit: {{ .Values.migration.backoffLimit }}
  activeDeadlineSeconds: {{ .Values.migration.activeDeadlineSeconds }}
  template:
    metadata:
      labels:
        {{- include "crm-service.labels" . | nindent 8 }}
        app.kubernetes.io/component: migration
    spec:
      {{- include "crm-service.podBase" . | nindent 6 }}
      restartPolicy: Never
      containers:
        - name: migrate
          {{- include "crm-service.containerBase" . | nindent 10 }}
          args:
            {{- toYaml .Values.migration.args | nindent 12 }}
          env:
            {{- range $k, $v := fromYaml (include "crm-service.envMap" .) }}
            - name: {{ $k }}
              value: {{ toString $v | quote }}
            {{- end }}
            {{- include "crm-service.secretEnv" . | trim | nindent 12 }}
          resources:
            {{- toYaml (.Values.migration.resources | default .Values.resources) | nindent 12 }}
{{- end }}
{{- end }}
