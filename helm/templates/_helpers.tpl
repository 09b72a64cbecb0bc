{{/* Names and labels. */}}
{{- define "toolorch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 30 | trimSuffix "-" -}}
{{- end -}}

{{- define "toolorch.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains (include "toolorch.name" .) .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "toolorch.name" .) | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Object names: (dict "root" $ "variant" NAME) for engines, (dict "root" $ "name" NAME) for experts. */}}
{{- define "toolorch.engine.name" -}}
{{- $base := printf "%s-engine" (include "toolorch.fullname" .root) -}}
{{- if eq .variant "default" }}{{ $base }}{{ else }}{{ printf "%s-%s" $base .variant | trunc 63 | trimSuffix "-" }}{{ end -}}
{{- end -}}

{{- define "toolorch.expert.name" -}}
{{- printf "%s-expert-%s" (include "toolorch.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "toolorch.gateway.name" -}}
{{- printf "%s-gateway" (include "toolorch.fullname" .) -}}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" C ["model" M]). */}}
{{- define "toolorch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "toolorch.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- with .model }}
toolorch.io/model: {{ . }}
{{- end }}
{{- end -}}

{{- define "toolorch.labels" -}}
{{ include "toolorch.selectorLabels" . }}
app.kubernetes.io/part-of: toolorch
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "toolorch.image" -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}

{{/* Pod and container security: non-root, no privilege escalation, no capabilities. */}}
{{- define "toolorch.podSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "toolorch.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: {{ .readOnly }}
capabilities:
  drop: [ALL]
{{- end -}}

{{/* The gateway's `--orchestrator` spec for an engine variant: openai:URL#SERVED-NAME. */}}
{{- define "toolorch.orchestratorSpec" -}}
{{- printf "openai:http://%s:8000/v1#%s" (include "toolorch.engine.name" .) .root.Values.engine.servedModelName -}}
{{- end -}}

{{/* Checkpoint URI -> how vLLM finds the weights: (dict "uri" URI). Returns YAML:
  scheme (s3|pvc|hf), model (the --model value), revision (hf), claim (pvc), source (s3). */}}
{{- define "toolorch.checkpoint" -}}
{{- $uri := .uri -}}
{{- if hasPrefix "s3://" $uri }}
scheme: s3
source: {{ $uri | quote }}
model: /models/checkpoint
{{- else if hasPrefix "pvc://" $uri }}
{{- $rest := trimPrefix "pvc://" $uri }}
{{- $claim := first (splitList "/" $rest) }}
scheme: pvc
claim: {{ $claim }}
model: {{ printf "/models/%s" (trimPrefix (printf "%s/" $claim) $rest) | quote }}
{{- else if hasPrefix "hf://" $uri }}
{{- $parts := splitList "@" (trimPrefix "hf://" $uri) }}
scheme: hf
model: {{ first $parts | quote }}
revision: {{ last $parts | quote }}
{{- else }}
{{- fail (printf "checkpoint uri %q: expected s3://, pvc:// or hf:// (see values.yaml)" $uri) }}
{{- end }}
{{- end -}}

{{/* The engine variants: default, plus the canary when enabled. Use with fromYaml: .variants. */}}
{{- define "toolorch.engine.variants" -}}
variants:
  - {name: default, replicas: {{ .Values.engine.replicas }}, uri: {{ .Values.engine.checkpoint.uri | quote }}}
  {{- if .Values.canary.enabled }}
  - {name: {{ .Values.canary.name }}, replicas: {{ .Values.canary.replicas }}, uri: {{ .Values.canary.checkpoint.uri | quote }}}
  {{- end }}
{{- end -}}

{{/* The price catalog file the gateway reads: toolorch.core.catalog.Catalog's fields (snake_case). */}}
{{- define "toolorch.catalog" -}}
{{- $root := . -}}
{{- $served := dict -}}
{{- range .Values.experts.models }}{{ $_ := set $served .name (default .name .servedModelName) }}{{ end -}}
{{- $c := .Values.catalog -}}
# Rendered by the toolorch chart from values.catalog; edit the values, not this file.
orchestrator: {input: {{ $c.orchestratorPrice.input }}, output: {{ $c.orchestratorPrice.output }}}
experts:
{{- range $c.experts }}
  - name: {{ .name | quote }}
    backend: {{ .backend }}
    price: {input: {{ .price.input }}, output: {{ .price.output }}}
    {{- with .description }}
    description: {{ . | quote }}
    {{- end }}
    {{- if .inCluster }}
    {{- if not (hasKey $served .inCluster) }}
    {{- fail (printf "catalog.experts[%s].inCluster: no experts.models entry named %q" .name .inCluster) }}
    {{- end }}
    model: {{ get $served .inCluster | quote }}
    base_url: {{ printf "http://%s:8000/v1" (include "toolorch.expert.name" (dict "root" $root "name" .inCluster)) | quote }}
    {{- else if .baseUrl }}
    model: {{ .model | quote }}
    base_url: {{ .baseUrl | quote }}
    {{- end }}
    {{- with .apiKeyEnv }}
    api_key_env: {{ . }}
    {{- end }}
    {{- with .timeoutS }}
    timeout_s: {{ . }}
    {{- end }}
    {{- if hasKey . "maxRetries" }}
    max_retries: {{ .maxRetries }}
    {{- end }}
    {{- with .maxTokens }}
    max_tokens: {{ . }}
    {{- end }}
    {{- with .simulated }}
    simulated:
      default_accuracy: {{ .defaultAccuracy }}
      tokens_out_mean: {{ .tokensOutMean }}
      latency_s_mean: {{ .latencySMean }}
      {{- if hasKey . "difficultyDecay" }}
      difficulty_decay: {{ .difficultyDecay }}
      {{- end }}
      {{- with .accuracy }}
      accuracy: {{ toJson . }}
      {{- end }}
    {{- end }}
{{- else }} []
{{- end }}
tools:
  max_observation_chars: {{ $c.tools.maxObservationChars }}
  code_timeout_s: {{ $c.tools.codeTimeoutS }}
  answer_tool: {{ $c.tools.answerTool }}
  describe_db_tools: {{ $c.tools.describeDbTools }}
{{- end -}}
