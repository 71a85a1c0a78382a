{{- define "crm-service.configmap" }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "crm-service.name" . }}-env
  labels:
    {{- include "crm-service.labels" . | nindent 4 }}
data:
  {{- range $k, $v := fromYaml (include "crm-service.envMap" .) }}
  {{ $k }}: {{ toString $v | quote }}
  {{- end }}
{{- end }}

{{- define "crm-service.serviceaccount" }}
{{- if .Values.serviceAccount.create }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "crm-service.name" . }}
  labels:
    {{- include "crm-service.labels" . | nindent 4 }}
  {{- with .Values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
{{- end }}
{{- end }}

{{- define "crm-service.service" }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ include "crm-service.name" . }}
  labels:
    {{- include "crm-service.labels" . | nindent 4 }}
  {{- with .Values.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: ClusterIP
  selector:
    {{- include "crm-service.serverSelectorLabels" . | nindent 4 }}
  ports:
    - name: {{ .Values.protocol }}
      port: {{ .Values.port }}
      targetPort: {{ .Values.protocol }}
      appProtocol: {{ ternary "kubernetes.io/h2c" "http" (eq .Values.protocol "grpc") }}
    {{- if include "crm-service.metricsSeparate" . }}
    - name: metrics
      port: {{ .Values.metrics.port }}
      targetPort: metrics
      appProtocol: http
    {{- end }}
{{- end }}

{{- define "crm-service.probe" -}}
{{- $ := index . 0 -}}{{- $kind := index . 1 -}}
{{- if eq $.Values.protocol "grpc" }}
grpc:
  port: {{ $.Values.port }}
  {{- if ne $kind "readiness" }}
  # SERVING while the process runs; readiness ("") also follows PostgreSQL and NATS (crmkit.service.Readiness)
  service: liveness
  {{- end }}
{{- else }}
httpGet:
  path: {{ ternary "/readyz" "/healthz" (eq $kind "readiness") }}
  port: http
{{- end }}
{{- toYaml (index $.Values.probes $kind) | nindent 0 }}
{{- end -}}

{{- define "crm-service.deployment" }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "crm-service.name" . }}
  labels:
    {{- include "crm-service.labels" . | nindent 4 }}
spec:
  {{- if not .Values.autoscaling.enabled }}
  replicas: {{ .Values.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 25%
  selector:
    matchLabels:
      {{- include "crm-service.serverSelectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "crm-service.labels" . | nindent 8 }}
        app.kubernetes.io/component: server
        {{- with .Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        # Roll the pods when their non-secret configuration changes.
        checksum/config: {{ include "crm-service.envMap" . | sha256sum }}
        {{- if .Values.metrics.podAnnotations }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ .Values.metrics.port | quote }}
        prometheus.io/path: {{ .Values.metrics.path | quote }}
        {{- end }}
        {{- with .Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- include "crm-service.podBase" . | nindent 6 }}
      serviceAccountName: {{ ternary (include "crm-service.name" .) "default" .Values.serviceAccount.create }}
      terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
      {{- with .Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if .Values.topologySpread.enabled }}
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: {{ .Values.topologySpread.topologyKey }}
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "crm-service.serverSelectorLabels" . | nindent 14 }}
      {{- end }}
      containers:
        - name: {{ include "crm-service.name" . }}
          {{- include "crm-service.containerBase" . | nindent 10 }}
          {{- with .Values.args }}
          args:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          ports:
            - name: {{ .Values.protocol }}
              containerPort: {{ .Values.port }}
              protocol: TCP
            {{- if include "crm-service.metricsSeparate" . }}
            - name: metrics
              containerPort: {{ .Values.metrics.port }}
              protocol: TCP
            {{- end }}
          envFrom:
            - configMapRef:
                name: {{ include "crm-service.name" . }}-env
          {{- with include "crm-service.secretEnv" . | trim }}
          env:
            {{- . | nindent 12 }}
          {{- end }}
          resources:
            {{- toYaml .Values.resources | nindent 12 }}
          startupProbe:
            {{- include "crm-service.probe" (list . "startup") | trim | nindent 12 }}
          livenessProbe:
            {{- include "crm-service.probe" (list . "liveness") | trim | nindent 12 }}
          readinessProbe:
            {{- include "crm-service.probe" (list . "readiness") | trim | nindent 12 }}
          lifecycle:
            # Let endpoints and load balancers drop this pod before the process gets SIGTERM.
            preStop:
              exec:
                command: ["sleep", {{ .Values.preStopSleepSeconds | quote }}]
{{- end }}

{{- define "crm-service.hpa" }}
{{- if .Values.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "crm-service.name" . }}
  labels:
    {{- include "crm-service.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "crm-service.name" . }}
  minReplicas: {{ .Values.autoscaling.minReplicas }}
  maxReplicas: {{ .Values.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .Values.autoscaling.targetCPUUtilizationPercentage }}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: {{ .Values.autoscaling.scaleDownStabilizationSeconds }}
{{- end }}
{{- end }}

{{- define "crm-service.pdb" }}
{{- if .Values.podDisruptionBudget.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "crm-service.name" . }}
  labels:
    {{- include "crm-service.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .Values.podDisruptionBudget.maxUnavailable }}
  # A crash-looping pod must not block node drains.
  unhealthyPodEvictionPolicy: AlwaysAllow
  selector:
    matchLabels:
      {{- include "crm-service.serverSelectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}

{{- define "crm-service.servicemonitor" }}
{{- if .Values.metrics.serviceMonitor.enabled }}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "crm-service.name" . }}
  labels:
    {{- include "crm-service.labels" . | nindent 4 }}
    {{- with .Values.metrics.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "crm-service.selectorLabels" . | nindent 6 }}
  endpoints:
    - port: {{ include "crm-service.metricsPortName" . }}
      path: {{ .Values.metrics.path }}
      interval: {{ .Values.metrics.serviceMonitor.interval }}
{{- end }}
{{- end }}
