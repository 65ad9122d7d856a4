{{/* Names and labels shared by the templates. */}}

{{- define "seedsweep.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "seedsweep.fullname" -}}
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

{{- define "seedsweep.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select the operator's pods. */}}
{{- define "seedsweep.selectorLabels" -}}
app.kubernetes.io/name: {{ include "seedsweep.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "seedsweep.labels" -}}
helm.sh/chart: {{ include "seedsweep.chart" . }}
{{ include "seedsweep.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: seedsweep
{{- end -}}

{{- define "seedsweep.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "seedsweep.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "seedsweep.operatorImage" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "seedsweep.trainerImage" -}}
{{- default (printf "ghcr.io/seedsweep/trainer:%s" .Chart.AppVersion) .Values.trainer.image -}}
{{- end -}}

{{- define "seedsweep.leaseNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.leaseNamespace -}}
{{- end -}}

{{/* Namespaces whose trial pods the NetworkPolicy covers. */}}
{{- define "seedsweep.trialNamespaces" -}}
{{- $ns := .Values.networkPolicy.namespaces -}}
{{- if and (not $ns) .Values.watchNamespace -}}
{{- $ns = list .Values.watchNamespace -}}
{{- end -}}
{{- if not $ns -}}
{{- fail "networkPolicy.namespaces: list the namespaces where sweeps run (required when watchNamespace is empty)" -}}
{{- end -}}
{{- toJson $ns -}}
{{- end -}}

{{/* What the operator needs on sweeps, Jobs, pods and events (leases are in seedsweep.leaseRules). */}}
{{- define "seedsweep.sweepRules" -}}
# Watch sweeps, write their status; a finalizer on sweeps with a checkpoint volume (patch) removes their checkpoints.
- apiGroups: [seedsweep.dev]
  resources: [seedsweeps]
  verbs: [get, list, watch, patch]
- apiGroups: [seedsweep.dev]
  resources: [seedsweeps/status]
  verbs: [get, patch, update]
# One Job per trial attempt; discarded trials' Jobs are deleted, finished ones labelled seedsweep.dev/recorded once
# the status records them (patch), so they are not listed again.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, delete, patch]
# Trial pods: IPs to scrape, termination messages to read.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
# The engine's memory of each sweep, in chunks the sweep owns, written by server-side apply (which the apiserver
# authorizes as create for a chunk not there yet).
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, create, patch]
{{- end -}}

{{- define "seedsweep.leaseRules" -}}
# Leader election.
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update]
{{- end -}}
