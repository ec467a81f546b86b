# What the other parts need: the Helm values (IRSA annotations, image repository), the GitHub workflows (role ARNs,
# cluster name, region), Dagster and MLflow (buckets, database endpoints, the secrets holding their passwords).

output "region" {
  description = "The region everything lives in."
  value       = var.region
}

output "cluster_name" {
  description = "EKS cluster name (aws eks update-kubeconfig --name ...)."
  value       = aws_eks_cluster.main.name
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint."
  value       = aws_eks_cluster.main.endpoint
}

output "cluster_certificate_authority_data" {
  description = "Base64 CA bundle of the Kubernetes API."
  value       = aws_eks_cluster.main.certificate_authority[0].data
}

output "ecr_repository_urls" {
  description = "Image repository URLs by name (wms-serving, wms-training); WMS_ECR_REPOSITORY takes wms-serving's."
  value       = { for name, repository in aws_ecr_repository.main : name => repository.repository_url }
}

output "dvc_bucket" {
  description = "DVC remote bucket (WMS_DVC_REMOTE = s3://<this>/...)."
  value       = aws_s3_bucket.data["dvc"].id
}

output "mlflow_bucket" {
  description = "MLflow artefact bucket (mlflow server --artifacts-destination s3://<this>/...)."
  value       = aws_s3_bucket.data["mlflow"].id
}

output "dagster_io_bucket" {
  description = "Dagster IO manager bucket: WMS_DAGSTER_IO_BUCKET in the wms-settings ConfigMap."
  value       = aws_s3_bucket.data["dagster"].id
}

output "logs_bucket" {
  description = "S3 access logs and VPC flow logs."
  value       = aws_s3_bucket.logs.id
}

output "mlflow_db_endpoint" {
  description = "MLflow's MySQL host:port (database mlflow, user mlflow, TLS required)."
  value       = aws_db_instance.mlflow.endpoint
}

output "mlflow_db_secret_arn" {
  description = "Secrets Manager secret with MLflow's MySQL username and password (JSON keys username, password)."
  value       = aws_db_instance.mlflow.master_user_secret[0].secret_arn
}

output "dagster_db_endpoint" {
  description = "Dagster's PostgreSQL host:port (database dagster, user dagster, TLS required)."
  value       = aws_db_instance.dagster.endpoint
}

output "dagster_db_secret_arn" {
  description = "Secrets Manager secret with Dagster's PostgreSQL username and password (JSON keys username, password)."
  value       = aws_db_instance.dagster.master_user_secret[0].secret_arn
}

output "irsa_role_arns" {
  description = "IRSA role ARN per service account (eks.amazonaws.com/role-arn annotation): dagster, mlflow, serving-staging, serving-prod, cluster-autoscaler."
  value       = { for name, role in aws_iam_role.irsa : name => role.arn }
}

output "github_role_arns" {
  description = "GitHub Actions roles by job: train (vars.AWS_TRAIN_ROLE_ARN), staging (vars.AWS_STAGING_ROLE_ARN), production (vars.AWS_PRODUCTION_ROLE_ARN)."
  value       = { for name, role in aws_iam_role.github : name => role.arn }
}

output "github_train_role_arn" {
  description = "Role the train workflow assumes (vars.AWS_TRAIN_ROLE_ARN)."
  value       = aws_iam_role.github["train"].arn
}

output "github_staging_role_arn" {
  description = "Role deploy's staging job assumes (vars.AWS_STAGING_ROLE_ARN)."
  value       = aws_iam_role.github["staging"].arn
}

output "github_production_role_arn" {
  description = "Role deploy's production job assumes (vars.AWS_PRODUCTION_ROLE_ARN)."
  value       = aws_iam_role.github["production"].arn
}

output "data_kms_key_arn" {
  description = "KMS key of the buckets, images, databases and their secrets."
  value       = aws_kms_key.data.arn
}
