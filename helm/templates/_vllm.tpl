{{/*
A vLLM OpenAI server: the orchestrator engine (and its canary) and every in-cluster expert.
Called with (dict "root" $ "name" NAME "component" engine|expert "model" LABEL "toolCalling" BOOL
"m" SPEC), SPEC holding image, replicas, servedModelName, checkpoint, vllm, env, resources,
shmSize, nodeSelector, tolerations, affinity and probes.
*/}}
{{- define "toolorch.vllm.args" -}}
{{- $ckpt := include "toolorch.checkpoint" .m.checkpoint | fromYaml -}}
{{- $v := .m.vllm -}}
- --model={{ $ckpt.model }}
{{- with $ckpt.revision }}
- --revision={{ . }}
{{- end }}
- --served-model-name={{ .m.servedModelName }}
- --host=0.0.0.0
- --port=8000
- --max-model-len={{ $v.maxModelLen }}
- --dtype={{ $v.dtype }}
- --tensor-parallel-size={{ $v.tensorParallelSize }}
- --gpu-memory-utilization={{ $v.gpuMemoryUtilization }}
- {{ ternary "--enable-prefix-caching" "--no-enable-prefix-caching" $v.enablePrefixCaching }}
{{- if .toolCalling }}
- --enable-auto-tool-choice
- --tool-call-parser=hermes
{{- end }}
{{- range $v.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{/* The init container that pulls an s3:// checkpoint into the models emptyDir. */}}
{{- define "toolorch.vllm.pull" -}}
{{- $s3 := .root.Values.storage.s3 -}}
{{- $img := .root.Values.storage.pullImage -}}
- name: pull-checkpoint
  image: {{ include "toolorch.image" $img }}
  imagePullPolicy: {{ $img.pullPolicy }}
  command: [python, -m, toolorch.ops.storage_cli, pull, {{ .source | quote }}, /models/checkpoint]
  env:
    - {name: TOOLORCH_S3_REGION, value: {{ $s3.region | quote }}}
    {{- with $s3.endpoint }}
    - {name: TOOLORCH_S3_ENDPOINT, value: {{ . | quote }}}
    {{- end }}
    {{- with $s3.credentialsSecret }}
    - name: AWS_ACCESS_KEY_ID
      valueFrom: {secretKeyRef: {name: {{ . }}, key: access-key}}
    - name: AWS_SECRET_ACCESS_KEY
      valueFrom: {secretKeyRef: {name: {{ . }}, key: secret-key}}
    {{- end }}
  resources:
    requests: {cpu: 500m, memory: 512Mi}
    limits: {memory: 2Gi}
  securityContext:
    {{- include "toolorch.containerSecurity" (dict "readOnly" true) | nindent 4 }}
  volumeMounts:
    - {name: models, mountPath: /models}
{{- end -}}

{{- define "toolorch.vllm.deployment" -}}
{{- $m := .m -}}
{{- $ckpt := include "toolorch.checkpoint" $m.checkpoint | fromYaml -}}
{{- $labelArgs := dict "root" .root "component" .component "model" .model -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .name }}
  labels:
    {{- include "toolorch.labels" $labelArgs | nindent 4 }}
spec:
  replicas: {{ $m.replicas }}
  # A new engine must be ready (weights loaded) before an old one goes away.
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  selector:
    matchLabels:
      {{- include "toolorch.selectorLabels" $labelArgs | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "toolorch.labels" $labelArgs | nindent 8 }}
      annotations:
        toolorch.io/checkpoint: {{ $m.checkpoint.uri | quote }}
    spec:
      automountServiceAccountToken: false
      securityContext:
        {{- include "toolorch.podSecurity" . | nindent 8 }}
      {{- if eq $ckpt.scheme "s3" }}
      initContainers:
        {{- include "toolorch.vllm.pull" (dict "root" .root "source" $ckpt.source) | nindent 8 }}
      {{- end }}
      containers:
        - name: vllm
          image: {{ include "toolorch.image" $m.image }}
          imagePullPolicy: {{ $m.image.pullPolicy }}
          command: [python3, -m, vllm.entrypoints.openai.api_server]
          args:
            {{- include "toolorch.vllm.args" . | nindent 12 }}
          env:
            # vLLM, torch and Hugging Face write caches under HOME; hf:// weights land in /models.
            - {name: HOME, value: /cache}
            - {name: HF_HOME, value: /models/huggingface}
            - {name: VLLM_NO_USAGE_STATS, value: "1"}
            {{- if and (eq $ckpt.scheme "hf") .root.Values.storage.huggingfaceTokenSecret }}
            - name: HF_TOKEN
              valueFrom: {secretKeyRef: {name: {{ .root.Values.storage.huggingfaceTokenSecret }}, key: HF_TOKEN}}
            {{- end }}
            {{- range $m.env }}
            - {name: {{ .name }}, value: {{ .value | quote }}}
            {{- end }}
          ports:
            - {name: http, containerPort: 8000, protocol: TCP}
          startupProbe:
            httpGet: {path: /health, port: http}
            periodSeconds: {{ $m.probes.startup.periodSeconds }}
            failureThreshold: {{ $m.probes.startup.failureThreshold }}
          readinessProbe:
            httpGet: {path: /health, port: http}
            periodSeconds: {{ $m.probes.readiness.periodSeconds }}
            failureThreshold: {{ $m.probes.readiness.failureThreshold }}
          livenessProbe:
            httpGet: {path: /health, port: http}
            periodSeconds: {{ $m.probes.liveness.periodSeconds }}
            failureThreshold: {{ $m.probes.liveness.failureThreshold }}
          resources:
            {{- toYaml $m.resources | nindent 12 }}
          securityContext:
            {{- include "toolorch.containerSecurity" (dict "readOnly" false) | nindent 12 }}
          volumeMounts:
            - {name: models, mountPath: /models, readOnly: {{ eq $ckpt.scheme "pvc" }}}
            - {name: cache, mountPath: /cache}
            - {name: dshm, mountPath: /dev/shm}
      volumes:
        {{- if eq $ckpt.scheme "pvc" }}
        - name: models
          persistentVolumeClaim: {claimName: {{ $ckpt.claim }}, readOnly: true}
        {{- else }}
        - name: models
          emptyDir: {sizeLimit: {{ .root.Values.storage.cacheSizeLimit }}}
        {{- end }}
        - name: cache
          emptyDir: {sizeLimit: 10Gi}
        - name: dshm
          emptyDir: {medium: Memory, sizeLimit: {{ $m.shmSize }}}
      {{- with $m.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $m.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $m.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}

{{- define "toolorch.vllm.service" -}}
{{- $labelArgs := dict "root" .root "component" .component "model" .model -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ .name }}
  labels:
    {{- include "toolorch.labels" $labelArgs | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "toolorch.selectorLabels" $labelArgs | nindent 4 }}
  ports:
    - {name: http, port: 8000, targetPort: http, protocol: TCP}
{{- end -}}
