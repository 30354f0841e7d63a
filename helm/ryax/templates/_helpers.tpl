{{- define "ryax.secretName" -}}
{{- if .Values.secrets.existingSecret -}}{{ .Values.secrets.existingSecret }}{{- else -}}{{ .Release.Name }}-ryax{{- end -}}
{{- end -}}

{{- define "ryax.dbHost" -}}
{{- default (printf "%s-postgresql" .Release.Name) .Values.database.host -}}
{{- end -}}

{{- define "ryax.amqpHost" -}}
{{- default (printf "%s-rabbitmq" .Release.Name) .Values.amqp.host -}}
{{- end -}}

{{- define "ryax.s3Endpoint" -}}
{{- default (printf "%s-minio:9000" .Release.Name) .Values.s3.endpoint -}}
{{- end -}}
