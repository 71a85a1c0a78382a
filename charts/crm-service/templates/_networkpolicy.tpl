{{/*
Built-in egress destinations, used where neither the service nor global.networkPolicy.egress
names them. Postgres has no `to`: a managed database is usually outside the cluster, so the
default only pins the port; environments should narrow it (see deploy/environments/prod).
*/}}
{{- define "crm-service.egressDefaults" -}}
dns:
  ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]
  to:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
      podSelector: {matchLabels: {k8s-app: kube-dns}}
postgres:
  ports: [{port: 5432, protocol: TCP}]
nats:
  ports: [{port: 4222, protocol: TCP}]
  to:
    - namespaceSelector: {}
      podSelector: {matchLabels: {app.kubernetes.io/name: nats}}
otlp:
  ports: [{port: 4317, protocol: TCP}, {port: 4318, protocol: TCP}]
  to:
    - namespaceSelector: {}
      podSelector: {matchLabels: {app.kubernetes.io/name: opentelemetry-collector}}
crmServices:
  to:
    - podSelector: {matchLabels: {app.kubernetes.io/part-of: crm}}
{{- end -}}

{{/* Effective egress rules by purpose: the service's, else global's, else the built-in. */}}
{{- define "crm-service.egressRules" -}}
{{- $builtin := fromYaml (include "crm-service.egressDefaults" .) -}}
{{- $global := ((.Values.global).networkPolicy).egress | default dict -}}
{{- $local := .Values.networkPolicy.egress | default dict -}}
{{- $purposes := list "dns" "nats" "otlp" "crmServices" -}}
{{- if .Values.database.enabled }}{{ $purposes = append $purposes "postgres" }}{{ end -}}
{{- $rules := dict -}}
{{- range $purposes -}}
{{- $_ := set $rules . (coalesce (get $local .) (get $global .) (get $builtin .)) -}}
{{- end -}}
{{- toYaml $rules -}}
{{- end -}}

{{- define "crm-service.networkpolicy" }}
{{- if .Values.networkPolicy.enabled }}
{{- $np := .Values.networkPolicy }}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "crm-service.name" . }}
  labels:
    {{- include "crm-service.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "crm-service.serverSelectorLabels" . | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress:
    {{- if $np.publicIngress }}
    - ports:
        - port: {{ .Values.protocol }}
    {{- else }}
    - ports:
        - port: {{ .Values.protocol }}
      from:
        - podSelector:
            matchLabels:
              app.kubernetes.io/instance: {{ .Release.Name }}
        {{- with $np.allowFrom }}
        - podSelector:
            matchLabels:
              app.kubernetes.io/part-of: crm
            matchExpressions:
              - key: app.kubernetes.io/name
                operator: In
                values: {{ toJson . }}
        {{- end }}
    {{- end }}
    {{- if or (include "crm-service.metricsSeparate" .) (not $np.publicIngress) }}
    - ports:
        - port: {{ include "crm-service.metricsPortName" . }}
      from:
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: {{ $np.monitoringNamespace }}
    {{- end }}
    {{- with $np.extraIngress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  egress:
    {{- range $purpose, $rule := fromYaml (include "crm-service.egressRules" .) }}
    # {{ $purpose }}
    - {{ toYaml $rule | indent 6 | trim }}
    {{- end }}
    {{- with $np.extraEgress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}
{{- end }}
