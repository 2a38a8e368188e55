{{- define "hami.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "hami.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "hami.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride -}}
{{- end -}}

{{- define "hami.scheduler" -}}{{ include "hami.fullname" . }}-scheduler{{- end -}}
{{- define "hami.kubeScheduler" -}}{{ include "hami.fullname" . }}-kube-scheduler{{- end -}}
{{- define "hami.devicePlugin" -}}{{ include "hami.fullname" . }}-device-plugin{{- end -}}
{{- define "hami.certgen" -}}{{ include "hami.fullname" . }}-certgen{{- end -}}
{{- define "hami.webhook" -}}{{ include "hami.fullname" . }}-webhook{{- end -}}
{{- define "hami.tlsSecret" -}}{{ include "hami.scheduler" . }}-tls{{- end -}}
{{/* kube-scheduler's client certificate for the extender, with its own CA (docs/security.md) */}}
{{- define "hami.clientTlsSecret" -}}{{ include "hami.scheduler" . }}-client-tls{{- end -}}
{{/* the Lease our extender campaigns on (kube-scheduler's own is .Values.schedulerName) */}}
{{- define "hami.extenderLease" -}}{{ .Values.schedulerName }}-extender{{- end -}}

{{- define "hami.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "hami.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.global.labels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "hami.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hami.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "hami.annotations" -}}
{{- with .Values.global.annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "hami.image" -}}
{{- $registry := .Values.global.imageRegistry | default .Values.image.registry -}}
{{- $tag := .Values.image.tag | default .Values.global.imageTag | default .Chart.AppVersion -}}
{{- if $registry -}}{{ $registry }}/{{ end -}}{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}

{{- define "hami.kubeSchedulerImage" -}}
{{- $img := .Values.scheduler.kubeScheduler.image -}}
{{- $registry := .Values.global.imageRegistry | default $img.registry -}}
{{- $tag := $img.tag | default (regexFind "^v[0-9]+\\.[0-9]+\\.[0-9]+" .Capabilities.KubeVersion.Version) -}}
{{- if $registry -}}{{ $registry }}/{{ end -}}{{ $img.repository }}:{{ $tag }}
{{- end -}}

{{- define "hami.imagePullSecrets" -}}
{{- with .Values.global.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* scheduler replicas: several only with leader election */}}
{{- define "hami.schedulerReplicas" -}}
{{- if .Values.scheduler.leaderElect -}}{{ .Values.scheduler.replicas }}{{- else -}}1{{- end -}}
{{- end -}}

{{/* every resource kube-scheduler hands to the extender (ignoredByScheduler), one per line */}}
{{- define "hami.managedResources" -}}
{{- $names := list .Values.resourceName .Values.resourceMem .Values.resourceMemPercentage .Values.resourceCores .Values.resourcePriority -}}
{{- range $vendor, $cfg := .Values.devices -}}
{{- if and (kindIs "map" $cfg) $cfg.enabled -}}
{{- $names = concat $names ($cfg.customresources | default list) -}}
{{- end -}}
{{- end -}}
{{- range $names | uniq }}
- name: {{ . | quote }}
  ignoredByScheduler: true
{{- end -}}
{{- end -}}

{{/* where kube-scheduler reaches the extender: the local container, or (several replicas that
     campaign independently) the Service, which only routes to the ready extender leader */}}
{{- define "hami.extenderURL" -}}
{{- $scheme := ternary "https" "http" .Values.scheduler.admissionWebhook.enabled -}}
{{- if .Values.scheduler.leaderElect -}}
{{ $scheme }}://{{ include "hami.scheduler" . }}.{{ include "hami.namespace" . }}.svc:{{ .Values.scheduler.service.extenderPort }}
{{- else -}}
{{ $scheme }}://127.0.0.1:{{ .Values.scheduler.service.extenderTargetPort }}
{{- end -}}
{{- end -}}
