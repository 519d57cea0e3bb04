{{/*
Names, labels and the pieces shared by the server, training and test pods.
*/}}

{{/* The chart name, cut to 63 characters because label values may not be longer. */}}
{{- define "sales-forecast.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object name, cut to 63 characters (the longest DNS label;
the training Job and CronJob cut it further for their suffixes). A release
whose name already contains the chart name is not repeated ("sales-forecast",
not "sales-forecast-sales-forecast").
*/}}
{{- define "sales-forecast.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
"name" cut to "max" characters for objects whose names carry a suffix. A cut
name ends in 8 hex digits of the whole name's sha256, so two long release
names that share their first characters still get different objects.
(fullname itself needs no hash: release names have at most 53 characters,
so its cut only ever drops part of the chart name.)
*/}}
{{- define "sales-forecast.fitName" -}}
{{- if le (len .name) (int .max) }}
{{- .name }}
{{- else }}
{{- $kept := trunc (int (sub .max 9)) .name | trimSuffix "-" }}
{{- printf "%s-%s" $kept (sha256sum .name | trunc 8) }}
{{- end }}
{{- end }}

{{/* Chart name and version, as the helm.sh/chart label wants them. */}}
{{- define "sales-forecast.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels that select this release's objects. They never change after the first
install: Deployment and Service selectors are immutable or would orphan pods.
*/}}
{{- define "sales-forecast.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sales-forecast.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "sales-forecast.labels" -}}
helm.sh/chart: {{ include "sales-forecast.chart" . | quote }}
{{ include "sales-forecast.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/part-of: sales-forecast
{{- end }}

{{/*
Selector of the server pods only. The component label keeps training and test
pods, which share the other labels, out of the Service, the HPA's metrics and
the PodDisruptionBudget.
*/}}
{{- define "sales-forecast.serverSelectorLabels" -}}
{{ include "sales-forecast.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "sales-forecast.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sales-forecast.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest pins the image. */}}
{{- define "sales-forecast.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The model store's claim: the one given, or the one the chart makes. */}}
{{- define "sales-forecast.modelClaim" -}}
{{- default (printf "%s-models" (include "sales-forecast.fullname" .)) .Values.modelStore.existingClaim }}
{{- end }}

{{/*
The training Job: the release revision, so each `helm upgrade` and rollback
trains once, then 8 hex digits of a hash of what training uses (the Job's
spec, with the image, and the CSV of a chart-made ConfigMap). `helm template`
(Argo CD, skaffold render, kubectl apply) always says revision 1: the hash
gives a changed Job a new name instead of a clash with its immutable pod
template, and an unchanged one keeps its name, so nothing retrains. Within
the 63 characters of the job-name label Kubernetes puts on its pods.
*/}}
{{- define "sales-forecast.trainingJobName" -}}
{{- $data := .Values.training.data }}
{{- $inputs := include "sales-forecast.trainingJobSpec" . }}
{{- if and (eq $data.source "configMap") (not $data.configMap.name) }}
{{- $inputs = cat $inputs (toJson (dict "csv" $data.configMap.csv)) }}
{{- end }}
{{- $hash := sha256sum $inputs | trunc 8 }}
{{- $suffix := printf "-train-%d-%s" (int .Release.Revision) $hash }}
{{- $prefix := dict "name" (include "sales-forecast.fullname" .)
      "max" (sub 63 (len $suffix)) }}
{{- printf "%s%s" (include "sales-forecast.fitName" $prefix) $suffix }}
{{- end }}

{{- define "sales-forecast.configMapName" -}}
{{- printf "%s-config" (include "sales-forecast.fullname" .) }}
{{- end }}

{{/* Where the service keeps its Prometheus multiprocess files (an emptyDir). */}}
{{- define "sales-forecast.metricsDir" -}}
/run/sales-forecast/metrics
{{- end }}

{{/*
terminationGracePeriodSeconds: the preStop sleep, then gunicorn's graceful
timeout, then a margin, so SIGKILL never cuts a request gunicorn is finishing.
*/}}
{{- define "sales-forecast.terminationGracePeriod" -}}
{{- add .Values.preStopSleepSeconds .Values.config.gracefulTimeoutSeconds .Values.terminationGraceMarginSeconds }}
{{- end }}

{{/*
Combinations the schema cannot express. Called from the Deployment, which
every release renders, so a bad combination stops the whole render.
*/}}
{{- define "sales-forecast.validate" -}}
{{- $store := .Values.modelStore }}
{{- if and (eq $store.accessMode "ReadOnlyMany") (not $store.existingClaim) }}
{{- fail (printf "modelStore.accessMode is ReadOnlyMany, but the chart would create an empty claim that nothing can write. Set modelStore.existingClaim to a claim that already holds models, or use ReadWriteOnce/ReadWriteMany.") }}
{{- end }}
{{- if and (eq $store.accessMode "ReadOnlyMany") .Values.training.enabled }}
{{- fail "modelStore.accessMode is ReadOnlyMany, but training.enabled is true and the training Job must write the model store. Set training.enabled=false or use ReadWriteOnce/ReadWriteMany." }}
{{- end }}
{{- if and (eq $store.accessMode "ReadOnlyMany") .Values.config.uploads }}
{{- fail "modelStore.accessMode is ReadOnlyMany, but config.uploads is true and uploads write the model store. Set config.uploads=false or use ReadWriteOnce/ReadWriteMany." }}
{{- end }}
{{- if and .Values.retraining.enabled (not .Values.training.enabled) }}
{{- fail "retraining.enabled is true but training.enabled is false; the CronJob reuses the training settings. Set training.enabled=true too, or retraining.enabled=false." }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail (printf "autoscaling.minReplicas (%d) is above autoscaling.maxReplicas (%d); make minReplicas <= maxReplicas." (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- end }}
{{- $cpuRequest := dig "requests" "cpu" "" .Values.resources }}
{{- if and .Values.autoscaling.enabled (not $cpuRequest) }}
{{- fail "autoscaling.enabled is true but resources.requests.cpu is not set; the HPA aims at a share of that request and cannot scale without it. Set resources.requests.cpu (e.g. 250m) or autoscaling.enabled=false." }}
{{- end }}
{{- if and .Values.autoscaling.enabled $cpuRequest (eq (include "sales-forecast.quantity" $cpuRequest | float64) 0.0) }}
{{- fail (printf "autoscaling.enabled is true but resources.requests.cpu is %v; the HPA aims at a share of that request and cannot scale on a share of nothing. Set resources.requests.cpu above 0 (e.g. 250m) or autoscaling.enabled=false." $cpuRequest) }}
{{- end }}
{{- include "sales-forecast.requestsWithinLimits" (dict "resources" .Values.resources "value" "resources") }}
{{- include "sales-forecast.requestsWithinLimits" (dict "resources" .Values.training.resources "value" "training.resources") }}
{{- include "sales-forecast.validateServiceName" . }}
{{- include "sales-forecast.validateSchedule" . }}
{{- include "sales-forecast.validateExtraEnv" . }}
{{- $monitor := .Values.metrics.serviceMonitor }}
{{- $interval := include "sales-forecast.seconds" $monitor.interval | int }}
{{- $timeout := include "sales-forecast.seconds" $monitor.scrapeTimeout | int }}
{{- if and $monitor.enabled $interval (gt $timeout $interval) }}
{{- fail (printf "metrics.serviceMonitor.scrapeTimeout (%s) is longer than metrics.serviceMonitor.interval (%s); Prometheus refuses such a scrape. Make the timeout at most the interval." $monitor.scrapeTimeout $monitor.interval) }}
{{- end }}
{{- $data := .Values.training.data }}
{{- if .Values.training.enabled }}
{{- if and (eq $data.source "configMap") (not $data.configMap.name) (not $data.configMap.csv) }}
{{- fail "training.data.source is configMap but neither training.data.configMap.name (an existing ConfigMap) nor training.data.configMap.csv (CSV text, e.g. --set-file training.data.configMap.csv=sales.csv) is set." }}
{{- end }}
{{- if and (eq $data.source "pvc") (or (not $data.pvc.claimName) (not $data.pvc.path)) }}
{{- fail (printf "training.data.source is pvc, which needs both training.data.pvc.claimName and training.data.pvc.path; got claimName=%q path=%q." $data.pvc.claimName $data.pvc.path) }}
{{- end }}
{{- if and (eq $data.source "url") (not $data.url) }}
{{- fail "training.data.source is url but training.data.url is empty; give an https:// address of a CSV file." }}
{{- end }}
{{- $caName := include "sales-forecast.caBundleName" . }}
{{- if and $caName (ne $data.source "url") }}
{{- fail (printf "training.data.caBundle.configMapName is %q, but training.data.source is %s and only a url download uses the bundle. Set it to \"\" or use source url." $caName $data.source) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A CPU or memory quantity of the forms the schema admits (250m, 0.5, 2, 512Mi,
1G) as a plain number of cores or bytes, so a request can be compared with its
limit. A YAML number is taken as it is.
*/}}
{{- define "sales-forecast.quantity" -}}
{{- if kindIs "string" . }}
{{- $number := regexFind "^[0-9]+([.][0-9]+)?" . }}
{{- $scale := dict "" 1.0 "m" 0.001 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15
      "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0
      "Pi" 1125899906842624.0 }}
{{- mulf ($number | float64) (get $scale (trimPrefix $number .) | default 1.0) }}
{{- else }}
{{- float64 . }}
{{- end }}
{{- end }}

{{/*
Kubernetes refuses a container whose request is above its limit, but only
once the object reaches the API server; this says so at render time, naming
the values ("value" is where "resources" came from).
*/}}
{{- define "sales-forecast.requestsWithinLimits" -}}
{{- range $kind := list "cpu" "memory" }}
{{- $request := dig "requests" $kind "" $.resources }}
{{- $limit := dig "limits" $kind "" $.resources }}
{{- if and $request $limit }}
{{- if gt (include "sales-forecast.quantity" $request | float64) (include "sales-forecast.quantity" $limit | float64) }}
{{- fail (printf "%s.requests.%s (%v) is above %s.limits.%s (%v); Kubernetes refuses a request larger than its limit. Lower the request or raise the limit." $.value $kind $request $.value $kind $limit) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Before Kubernetes 1.36 a Service name must start with a letter (a DNS-1035
label), while Helm lets a release name start with a digit; the Service would
be refused halfway through the install, after the other objects were made.
*/}}
{{- define "sales-forecast.validateServiceName" -}}
{{- $name := include "sales-forecast.fullname" . }}
{{- if and (regexMatch "^[0-9]" $name) (semverCompare "<1.36.0-0" .Capabilities.KubeVersion.Version) }}
{{- fail (printf "The Service would be named %q, which starts with a digit; Kubernetes %s accepts Service names starting with a letter only (1.36 and later accept both). Install under a release name that starts with a letter, or set fullnameOverride to a name that does." $name .Capabilities.KubeVersion.Version) }}
{{- end }}
{{- end }}

{{/*
The schema checks that retraining.schedule has five fields; this checks each
field's values the way Kubernetes' cron parser does (numbers in range, names
of months and days, *, ?, ranges, lists and steps), so "60 3 * * *" or a day
of week 7 stops the render instead of the CronJob being refused.
*/}}
{{- define "sales-forecast.validateSchedule" -}}
{{- $schedule := .Values.retraining.schedule }}
{{- if and .Values.retraining.enabled .Values.training.enabled (not (hasPrefix "@" $schedule)) }}
{{- $fields := list
  (list "minute" "0-59" "0?[0-9]|[1-5][0-9]")
  (list "hour" "0-23" "0?[0-9]|1[0-9]|2[0-3]")
  (list "day of month" "1-31" "0?[1-9]|[12][0-9]|3[01]")
  (list "month" "1-12 or JAN-DEC"
    "0?[1-9]|1[0-2]|(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)")
  (list "day of week" "0-6 or SUN-SAT" "[0-6]|(?i:sun|mon|tue|wed|thu|fri|sat)") }}
{{- range $i, $value := regexSplit "\\s+" (trim $schedule) -1 }}
{{- $field := index $fields $i }}
{{- $one := printf "(%s)" (index $field 2) }}
{{- $item := printf "(\\*|\\?|%s(-%s)?)(/[1-9][0-9]*)?" $one $one }}
{{- if not (regexMatch (printf "^%s(,%s)*$" $item $item) $value) }}
{{- fail (printf "retraining.schedule %q: its %s field %q is not a value in %s, a range (1-5), a list (1,15), a step (*/10) or *; Kubernetes would refuse the CronJob." $schedule (index $field 0) $value (index $field 1)) }}
{{- end }}
{{- range $part := splitList "," $value }}
{{- $bounds := splitList "-" (regexReplaceAll "/.*$" $part "") }}
{{- if eq (len $bounds) 2 }}
{{- $from := include "sales-forecast.cronNumber" (first $bounds) | atoi }}
{{- $to := include "sales-forecast.cronNumber" (last $bounds) | atoi }}
{{- if gt $from $to }}
{{- fail (printf "retraining.schedule %q: its %s field has the range %q, which ends before it starts; Kubernetes would refuse the CronJob. Write it from the lower value to the higher one." $schedule (index $field 0) $part) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A value of a cron field as a number: a month or day name as its number (JAN 1,
SUN 0), digits as they are (leading zeros are decimal there, not octal).
*/}}
{{- define "sales-forecast.cronNumber" -}}
{{- $names := dict "jan" 1 "feb" 2 "mar" 3 "apr" 4 "may" 5 "jun" 6 "jul" 7 "aug" 8
      "sep" 9 "oct" 10 "nov" 11 "dec" 12
      "sun" 0 "mon" 1 "tue" 2 "wed" 3 "thu" 4 "fri" 5 "sat" 6 }}
{{- $name := lower . }}
{{- if hasKey $names $name }}{{ get $names $name }}{{ else }}{{ . }}{{ end }}
{{- end }}

{{/*
User-given labels or annotations ("extra", from the value named "value"),
refused when one repeats a key the chart sets on the same object ("chart", as
YAML text): the rendered map would hold the key twice, the last silently
winning, and selector labels must never change.
*/}}
{{- define "sales-forecast.extraKeys" -}}
{{- $chart := fromYaml .chart }}
{{- range $key, $_ := .extra }}
{{- if hasKey $chart $key }}
{{- fail (printf "%s sets %s, which the chart sets itself on the same object; remove it from %s (the chart's own labels and annotations cannot be overridden)." $.value $key $.value) }}
{{- end }}
{{- end }}
{{- with .extra }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{/*
extraEnv entries come after envFrom and would silently win over the settings
ConfigMap, so a name it sets is refused, with the value that sets it.
*/}}
{{- define "sales-forecast.validateExtraEnv" -}}
{{- $configMap := include (print .Template.BasePath "/configmap.yaml") . | fromYaml }}
{{- $fromValue := dict
  "SALES_FORECAST_WORKERS" "config.workers"
  "SALES_FORECAST_THREADS" "config.threads"
  "SALES_FORECAST_TIMEOUT" "config.timeoutSeconds"
  "SALES_FORECAST_GRACEFUL_TIMEOUT" "config.gracefulTimeoutSeconds"
  "SALES_FORECAST_LOG_LEVEL" "config.logLevel"
  "SALES_FORECAST_MODEL_NAME" "config.modelName"
  "SALES_FORECAST_RELOAD_INTERVAL" "config.reloadIntervalSeconds"
  "SALES_FORECAST_UPLOADS" "config.uploads"
  "SALES_FORECAST_UPLOAD_HOSTS" "config.uploadHosts"
  "SALES_FORECAST_RELOAD_CODE" "config.reloadCode" }}
{{- range .Values.extraEnv }}
{{- if hasKey $configMap.data .name }}
{{- if hasKey $fromValue .name }}
{{- fail (printf "extraEnv sets %s, which the chart sets from %s; set %s instead." .name (get $fromValue .name) (get $fromValue .name)) }}
{{- end }}
{{- fail (printf "extraEnv sets %s, which the chart fixes because the pods, probes and volumes depend on it; remove it from extraEnv." .name) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Seconds in a Prometheus duration of the form the schema admits (1h30m, 10s);
"0" (Prometheus' own default) is 0.
*/}}
{{- define "sales-forecast.seconds" -}}
{{- $perUnit := dict "h" 3600 "m" 60 "s" 1 }}
{{- $total := 0 }}
{{- range regexFindAll "[0-9]+[hms]" . -1 }}
{{- $unit := regexFind "[hms]$" . }}
{{- $total = add $total (mul (trimSuffix $unit . | int) (get $perUnit $unit)) }}
{{- end }}
{{- $total }}
{{- end }}

{{/*
The ConfigMap of certificates a url download trusts, or "". Read with dig, and
optional in the schema: `helm upgrade --reuse-values` keeps the values of the
chart the release was installed with, which may predate training.data.caBundle.
*/}}
{{- define "sales-forecast.caBundleName" -}}
{{- dig "caBundle" "configMapName" "" .Values.training.data }}
{{- end }}

{{/* The name of the ConfigMap holding training data, when source is configMap. */}}
{{- define "sales-forecast.dataConfigMapName" -}}
{{- default (printf "%s-training-data" (include "sales-forecast.fullname" .)) .Values.training.data.configMap.name }}
{{- end }}

{{/*
The training pod's spec, shared by the Job and the CronJob so both train the
same way. The model store is mounted read-write here and only here (unless
uploads are on).
*/}}
{{- define "sales-forecast.trainingPodSpec" -}}
{{- $data := .Values.training.data }}
{{- $caName := include "sales-forecast.caBundleName" . }}
{{- $caKey := dig "caBundle" "key" "ca.crt" $data }}
{{- $caBundle := and (eq $data.source "url") $caName }}
serviceAccountName: {{ include "sales-forecast.serviceAccountName" . | quote }}
automountServiceAccountToken: false
restartPolicy: Never
{{- include "sales-forecast.imagePullSecrets" . }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
containers:
  - name: train
    image: {{ include "sales-forecast.image" . | quote }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    command: ["python", "-m", "training"]
    args:
      - --data
      {{- if eq $data.source "bundled" }}
      - /app/data/wineind.csv
      {{- else if eq $data.source "configMap" }}
      - {{ printf "/data/%s" $data.configMap.key | quote }}
      {{- else if eq $data.source "pvc" }}
      - {{ printf "/data/%s" (trimPrefix "/" $data.pvc.path) | quote }}
      {{- else }}
      - {{ $data.url | quote }}
      {{- end }}
      - --model-dir
      - /models
      {{- /*
      One argument each, "--flag=value": a column or series named "-x" would
      otherwise be read as an option, and training would refuse to start.
      */}}
      - {{ printf "--date-col=%s" .Values.training.dateColumn | quote }}
      - {{ printf "--sales-col=%s" .Values.training.salesColumn | quote }}
      {{- with .Values.training.seriesColumn }}
      - {{ printf "--series-col=%s" . | quote }}
      {{- end }}
      {{- with .Values.training.seriesName }}
      - {{ printf "--series-name=%s" . | quote }}
      {{- end }}
      {{- if .Values.training.strict }}
      - --strict
      {{- end }}
      {{- if .Values.training.force }}
      - --force
      {{- end }}
      {{- if .Values.training.keep }}
      - {{ printf "--keep=%d" (int .Values.training.keep) | quote }}
      {{- end }}
      - --json
    env:
      # matplotlib writes a font cache on first use; the root filesystem is
      # read-only, so point it at the /tmp emptyDir.
      - name: MPLCONFIGDIR
        value: /tmp/matplotlib
      {{- if $caBundle }}
      # Python's TLS reads its trusted certificates from this file instead of
      # the image's store.
      - name: SSL_CERT_FILE
        value: {{ printf "/etc/sales-forecast/ca/%s" $caKey | quote }}
      {{- end }}
    securityContext:
      {{- toYaml .Values.securityContext | nindent 6 }}
    resources:
      {{- toYaml .Values.training.resources | nindent 6 }}
    volumeMounts:
      - name: models
        mountPath: /models
      - name: tmp
        mountPath: /tmp
      {{- if has $data.source (list "configMap" "pvc") }}
      - name: data
        mountPath: /data
        readOnly: true
      {{- end }}
      {{- if $caBundle }}
      - name: ca
        mountPath: /etc/sales-forecast/ca
        readOnly: true
      {{- end }}
volumes:
  - name: models
    persistentVolumeClaim:
      claimName: {{ include "sales-forecast.modelClaim" . | quote }}
  - name: tmp
    emptyDir:
      sizeLimit: 256Mi
  {{- if eq $data.source "configMap" }}
  - name: data
    configMap:
      name: {{ include "sales-forecast.dataConfigMapName" . | quote }}
      items:
        - key: {{ $data.configMap.key | quote }}
          path: {{ $data.configMap.key | quote }}
  {{- else if eq $data.source "pvc" }}
  - name: data
    persistentVolumeClaim:
      claimName: {{ $data.pvc.claimName | quote }}
      readOnly: true
  {{- end }}
  {{- if $caBundle }}
  - name: ca
    configMap:
      name: {{ $caName | quote }}
      items:
        - key: {{ $caKey | quote }}
          path: {{ $caKey | quote }}
  {{- end }}
{{- with .Values.training.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.training.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.training.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Annotations that tell checkov why a policy does not apply; see each reason. */}}
{{- define "sales-forecast.checkovSkips" -}}
{{- if not .Values.image.digest }}
checkov.io/skip1: CKV_K8S_43=The tag is the release's own build; set image.digest to pin by digest where a registry gives one (kind-loaded images have none).
{{- end }}
checkov.io/skip2: CKV_K8S_15=IfNotPresent is required for images loaded into kind or another local cluster without a registry; tags are immutable per build.
{{- if not .Values.networkPolicy.enabled }}
checkov.io/skip3: CKV2_K8S_6=The NetworkPolicy is one value away (networkPolicy.enabled); it is off by default because only the operator knows which namespaces (monitoring, ingress) must reach the pods.
{{- end }}
{{- end }}

{{/* The spec of the training Job and of the CronJob's Jobs. */}}
{{- define "sales-forecast.trainingJobSpec" -}}
backoffLimit: {{ .Values.training.backoffLimit }}
activeDeadlineSeconds: {{ .Values.training.activeDeadlineSeconds }}
{{ include "sales-forecast.trainingFailurePolicy" . }}
template:
  metadata:
    labels:
      {{- include "sales-forecast.labels" . | nindent 6 }}
      app.kubernetes.io/component: training
  spec:
    {{- include "sales-forecast.trainingPodSpec" . | nindent 4 }}
{{- end }}

{{/*
How a training Job treats a failed pod (the Job and the CronJob's Jobs).
*/}}
{{- define "sales-forecast.trainingFailurePolicy" -}}
# Exit 2 (the data was refused) and 3 (the new version was not promoted) are
# verdicts on the data: another attempt would reach the same one.
podFailurePolicy:
  rules:
    - action: FailJob
      onExitCodes:
        containerName: train
        operator: In
        values: [2, 3]
    - action: Ignore
      onPodConditions:
        - type: DisruptionTarget
          status: "True"
{{- end }}

{{/*
imagePullSecrets of a pod spec, or nothing. Each entry of the value is a Secret's
name or, as many charts write it, {name: ...}; both render as {name: ...}.
*/}}
{{- define "sales-forecast.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  {{- if kindIs "map" . }}
  - name: {{ .name | quote }}
  {{- else }}
  - name: {{ . | quote }}
  {{- end }}
  {{- end }}
{{- end }}
{{- end }}
