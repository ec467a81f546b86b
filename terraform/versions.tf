# Pinned so that every `terraform init` resolves the same major versions: aws 5.x has the EKS access entries, the
# AL2023 NVIDIA AMI type and RDS-managed master passwords this configuration relies on.
terraform {
  required_version = ">= 1.6.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
    }
  }
}
