{{/* The text of NOTES.txt (a define, so tests/chart/test_notes.py can render it with helm template) */}}
{{- define "hami.notes" -}}
{{- $ns := include "hami.namespace" . -}}
{{- $s := .Values.scheduler -}}
{{- $svc := $s.service -}}
{{- $d := .Values.devicePlugin -}}
{{- $sched := include "hami.scheduler" . -}}
{{- $plugin := include "hami.devicePlugin" . -}}
{{- $scheme := ternary "https" "http" $s.admissionWebhook.enabled -}}
{{- $labels := list -}}
{{- range $k, $v := $d.nvidiaNodeSelector }}{{ $labels = append $labels (printf "%s=%s" $k $v) }}{{ end -}}
hami {{ .Chart.AppVersion }} is installed as release {{ .Release.Name }} in namespace {{ $ns }}.

Installed:
  Deployment {{ $sched }} ({{ include "hami.schedulerReplicas" . }} replica(s){{ if $s.leaderElect }}, leader election: only the leader is Ready{{ end }}):
    kube-scheduler with the profile {{ .Values.schedulerName }} + hami scheduler (extender{{ if $s.admissionWebhook.enabled }} and mutating webhook{{ end }})
  Service {{ $sched }} ({{ $svc.type }}): http {{ $svc.httpPort }} -> {{ $svc.httpTargetPort }} ({{ $scheme }}), monitor {{ $svc.monitorPort }} -> {{ $svc.monitorTargetPort }} (plain-HTTP /metrics){{ if $s.leaderElect }}, extender {{ $svc.extenderPort }} -> {{ $svc.extenderTargetPort }} (/filter /bind, mTLS: kube-scheduler's client certificate only){{ end }}
{{- if $s.admissionWebhook.enabled }}
  MutatingWebhookConfiguration {{ include "hami.webhook" . }} (failurePolicy {{ $s.admissionWebhook.failurePolicy }}): GPU pods get schedulerName {{ .Values.schedulerName }}
{{- end }}
{{- if $d.enabled }}
  DaemonSet {{ $plugin }} on {{ if $labels }}nodes labelled {{ join "," $labels }}{{ else }}every node{{ end }}: device plugin{{ if $d.monitor.enabled }} + monitor (Service {{ $plugin }}-monitor, port {{ $d.service.httpPort }}){{ end }}
{{- end }}
{{- if .Values.prometheus.enabled }}
  ServiceMonitors {{ $sched }}{{ if and $d.enabled $d.monitor.enabled }} and {{ $plugin }}{{ end }} (port monitor, http)
{{- end }}
{{- if .Values.dashboard.enabled }}
  ConfigMap {{ include "hami.fullname" . }}-dashboard (Grafana dashboard)
{{- end }}

Check it:
  kubectl -n {{ $ns }} get deploy,ds,svc,pods -l app.kubernetes.io/instance={{ .Release.Name }}
  kubectl -n {{ $ns }} rollout status deploy/{{ $sched }}
{{- if $d.enabled }}
{{- if $labels }}
  kubectl label node <gpu-node> {{ join " " $labels }}    # the device plugin runs only there
{{- end }}
  kubectl -n {{ $ns }} rollout status ds/{{ $plugin }}
  kubectl get node <gpu-node> -o jsonpath='{.metadata.annotations.hami\.io/node-nvidia-register}'    # the GPUs hami sees
{{- end }}
  kubectl -n {{ $ns }} logs deploy/{{ $sched }} -c vgpu-scheduler-extender

A pod asking for a slice of a GPU:
  resources: {limits: {{ printf "{%s: 1, %s: 3000, %s: 30}" .Values.resourceName .Values.resourceMem .Values.resourceCores }}}    # 3000 MiB, 30 %
{{- if not $s.admissionWebhook.enabled }}
  and, with the webhook off, schedulerName: {{ .Values.schedulerName }}
{{- end }}
  kubectl get pod <pod> -o jsonpath='{.metadata.annotations.hami\.io/vgpu-node}'    # where hami placed it

Metrics (Prometheus text, plain HTTP, as HAMi's ports):
  kubectl -n {{ $ns }} port-forward svc/{{ $sched }} {{ $svc.monitorPort }}:{{ $svc.monitorPort }} &    # the scheduler (leader)
  curl -s http://127.0.0.1:{{ $svc.monitorPort }}/metrics | grep -E '^hami_(build_info|gpu_memory_limit_bytes)'
{{- if eq $svc.type "NodePort" }}
  or http://<any-node-ip>:{{ $svc.monitorPort }}/metrics (NodePort)
{{- end }}
{{- if and $d.enabled $d.monitor.enabled }}
  curl -s http://<gpu-node-ip>:{{ $d.service.httpPort }}/metrics    # {{ if eq $d.service.type "NodePort" }}NodePort of {{ end }}the node's hami monitor: per-container usage
{{- end }}
{{- if not .Values.prometheus.enabled }}
  (prometheus.enabled=true adds ServiceMonitors for both)
{{- end }}

Uninstall: helm uninstall {{ .Release.Name }} -n {{ $ns }}
{{- if and $s.admissionWebhook.enabled (not $s.certManager.enabled) }}; the TLS Secret {{ include "hami.tlsSecret" . }} stays (docs/install.md){{ end }}
{{- end -}}
