{{/* The release's full name: the release name, with the chart's name unless it contains it. */}}
{{- define "schemaheal.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "schemaheal.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: worker
{{- end -}}

{{- define "schemaheal.labels" -}}
{{ include "schemaheal.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "schemaheal.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "schemaheal.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The ConfigMap of the access policy: the chart's own when the policy is inline. */}}
{{- define "schemaheal.accessPolicyConfigMap" -}}
{{- if .Values.accessPolicy.policy -}}
{{- printf "%s-access-policy" (include "schemaheal.fullname" .) -}}
{{- else -}}
{{- .Values.accessPolicy.configMapName -}}
{{- end -}}
{{- end -}}

{{/* A heal in flight finishes before the pod goes: the longest heal, the longest lock wait,
     and 30 s to publish the reply and commit. */}}
{{- define "schemaheal.terminationGracePeriod" -}}
{{- if .Values.terminationGracePeriodSeconds -}}
{{- .Values.terminationGracePeriodSeconds -}}
{{- else -}}
{{- $heal := .Values.settings.max_heal_s | default 900 | float64 -}}
{{- $wait := .Values.settings.lock_wait_s | default 60 | float64 -}}
{{- addf $heal $wait 30 | ceil | int -}}
{{- end -}}
{{- end -}}
