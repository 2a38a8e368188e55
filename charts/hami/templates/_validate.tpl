{{/*
Unknown values keys. helm checks values.schema.json (types, enums, patterns) before rendering;
this check then walks .Values against files/values-keys.yaml and fails once with a line per key
the chart does not know: a key of HAMi's chart 2.10 says what it became, any other key names the
nearest known key. The schema leaves unknown keys to this check on purpose: helm stops at the
first schema error, before any template could say more than "not allowed".
Rendered by templates/validate.yaml, so `helm template --show-only` checks too.
*/}}
{{- define "hami.validateValues" -}}
{{- $table := .Files.Get "files/values-keys.yaml" | fromYaml -}}
{{- $state := dict "errors" list -}}
{{- /* as a subchart, `global` is shared with the parent and its other subcharts */ -}}
{{- $root := eq .Template.BasePath (printf "%s/templates" .Chart.Name) -}}
{{- include "hami.validateLevel" (dict "values" .Values "known" $table.known "moved" $table.hami210 "prefix" "" "state" $state "root" $root) -}}
{{- $errors := $state.errors -}}
{{- /* ports: the extender runs as a non-root user (HAMi's listened on 443 as root) */ -}}
{{- $service := .Values.scheduler.service | default dict -}}
{{- range $name := list "httpTargetPort" "monitorTargetPort" -}}
{{- $port := index $service $name -}}
{{- if and $port (lt (int $port) 1024) -}}
{{- $errors = append $errors (printf "scheduler.service.%s: %d is below 1024, where the extender (a non-root user) cannot listen; hami's default is %s" $name (int $port) (ternary "8443" "9395" (eq $name "httpTargetPort"))) -}}
{{- end -}}
{{- end -}}
{{- if and $service.httpTargetPort (eq (toString $service.httpTargetPort) (toString $service.monitorTargetPort)) -}}
{{- $errors = append $errors (printf "scheduler.service.monitorTargetPort: %v is httpTargetPort too; the plain-HTTP /metrics listener needs a port of its own" $service.monitorTargetPort) -}}
{{- end -}}
{{- if $errors -}}
{{- $head := printf "values: %d problem(s) (docs/install.md; `hami chart migrate-values` converts a HAMi values file):" (len $errors) -}}
{{- fail (printf "%s\n  %s" $head (join "\n  " $errors)) -}}
{{- end -}}
{{- end -}}

{{- define "hami.validateLevel" -}}
{{- $ctx := . -}}
{{- range $key, $value := $ctx.values -}}
{{- $path := printf "%s%s" $ctx.prefix $key -}}
{{- if hasKey $ctx.known $key -}}
{{- $known := index $ctx.known $key -}}
{{- if and (kindIs "map" $known) (kindIs "map" $value) (or $ctx.root (ne $path "global")) -}}
{{- include "hami.validateLevel" (dict "values" $value "known" $known "moved" $ctx.moved "prefix" (printf "%s." $path) "state" $ctx.state "root" $ctx.root) -}}
{{- end -}}
{{- else if hasKey $ctx.moved $path -}}
{{- $_ := set $ctx.state "errors" (append $ctx.state.errors (printf "%s: a key of HAMi's chart 2.10; %s" $path (index $ctx.moved $path))) -}}
{{- else -}}
{{- $best := "" -}}
{{- $bestDistance := 1000 -}}
{{- range $candidate := keys $ctx.known | sortAlpha -}}
{{- $distance := include "hami.editDistance" (list (lower $key) (lower $candidate)) | int -}}
{{- if lt $distance $bestDistance -}}
{{- $best = $candidate -}}
{{- $bestDistance = $distance -}}
{{- end -}}
{{- end -}}
{{- $_ := set $ctx.state "errors" (append $ctx.state.errors (printf "%s: unknown key; the nearest known key is %s%s" $path $ctx.prefix $best)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Levenshtein distance of two strings (list A B), one row at a time */}}
{{- define "hami.editDistance" -}}
{{- $a := splitList "" (index . 0) -}}
{{- $b := splitList "" (index . 1) -}}
{{- $previous := until (add1 (len $b) | int) -}}
{{- range $i, $ca := $a -}}
{{- $row := list (add1 $i) -}}
{{- range $j, $cb := $b -}}
{{- $cost := ternary 0 1 (eq $ca $cb) -}}
{{- $deleted := add1 (index $previous (add1 $j | int)) -}}
{{- $inserted := add1 (index $row $j) -}}
{{- $replaced := add $cost (index $previous $j) -}}
{{- $row = append $row (min $deleted $inserted $replaced) -}}
{{- end -}}
{{- $previous = $row -}}
{{- end -}}
{{- last $previous -}}
{{- end -}}
