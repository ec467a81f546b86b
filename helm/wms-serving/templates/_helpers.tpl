{{/*
Names, labels and the checks that stop a release before it reaches the cluster. Every object is named after the
release (wms-serving, wms/deployment/stages.py) and lives in the release's namespace.
*/}}

{{- define "wms-serving.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "wms-serving.labels" -}}
{{ include "wms-serving.selectorLabels" . }}
app.kubernetes.io/component: inference
app.kubernetes.io/part-of: wms
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
wms.io/model: {{ .Values.model.name }}
wms.io/model-version: {{ include "wms-serving.modelVersion" . | quote }}
{{- with .Values.stage.name }}
wms.io/stage: {{ . }}
{{- end }}
{{- end }}

{{- define "wms-serving.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{ .Values.serviceAccount.name | default .Release.Name }}
{{- else -}}
{{ required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The model version, checked: a label value (MLflow's versions are numbers). */}}
{{- define "wms-serving.modelVersion" -}}
{{- $version := toString (.Values.model.version | default "") -}}
{{- if not $version -}}
{{- fail "model.version is missing: each release names the registered model version its image holds (wms release render --model-version N)" -}}
{{- end -}}
{{- if not (regexMatch "^[0-9A-Za-z]([0-9A-Za-z._-]{0,61}[0-9A-Za-z])?$" $version) -}}
{{- fail (printf "model.version %q is not a valid version: use letters, digits, '.', '_' or '-' (63 at most), e.g. 7" $version) -}}
{{- end -}}
{{- $version -}}
{{- end }}

{{/* The image reference, repository@sha256:digest: releases pin the digest, never a mutable tag. */}}
{{- define "wms-serving.image" -}}
{{- $repository := .Values.image.repository | default "" -}}
{{- if not $repository -}}
{{- fail "image.repository is missing: give the ECR repository of the serving image, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/wms-serving" -}}
{{- end -}}
{{- if regexMatch "@|:[^/]*$" $repository -}}
{{- fail (printf "image.repository %q carries a tag or digest: give the repository alone and the digest in image.digest" $repository) -}}
{{- end -}}
{{- $digest := .Values.image.digest | default "" -}}
{{- if not $digest -}}
{{- fail "image.digest is missing: releases pin the serving image by digest (sha256:<64 hex digits>, as the image push printed it), never by a mutable tag" -}}
{{- end -}}
{{- if not (regexMatch "^sha256:[0-9a-f]{64}$" $digest) -}}
{{- fail (printf "image.digest %q is malformed: expected sha256: followed by 64 lowercase hex digits, as the image push printed it" $digest) -}}
{{- end -}}
{{- printf "%s@%s" $repository $digest -}}
{{- end }}

{{/* A stage's values render only into that stage's namespace. */}}
{{- define "wms-serving.checkNamespace" -}}
{{- if and .Values.stage.namespace (ne .Values.stage.namespace .Release.Namespace) -}}
{{- fail (printf "these are the %s values, for namespace %s, not %s: release them with --namespace %s" .Values.stage.name .Values.stage.namespace .Release.Namespace .Values.stage.namespace) -}}
{{- end -}}
{{- end }}

{{/* config.properties for TorchServe, mounted over the image's own: files/config.properties (the image's settings, written from wms/deployment/container_image.py IMAGE_PROPERTIES) and the workers per model. */}}
{{- define "wms-serving.configProperties" -}}
{{ .Files.Get "files/config.properties" }}default_workers_per_model={{ .Values.serving.workersPerModel }}
{{- end }}
