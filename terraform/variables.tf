# Inputs. Only github_repository and cluster_public_access_cidrs have no default: see README.md and
# terraform.tfvars.example for what a DevOps engineer fills in.

variable "region" {
  description = "AWS region for every resource."
  type        = string
  default     = "eu-central-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-central-1."
  }
}

variable "name" {
  description = "Prefix of every resource name and the EKS cluster name."
  type        = string
  default     = "wms"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name))
    error_message = "name must be 2 to 21 lowercase letters, digits or dashes, starting with a letter (it goes into S3 bucket names)."
  }
}

variable "tags" {
  description = "Extra tags on every resource (cost centre, owner, ...)."
  type        = map(string)
  default     = {}
}

variable "kubernetes_version" {
  description = "EKS control plane version; the tests validate every Kubernetes object against this version's schemas."
  type        = string
  default     = "1.31"
}

variable "vpc_cidr" {
  description = "The VPC's address range."
  type        = string
  default     = "10.0.0.0/16"
}

variable "availability_zone_suffixes" {
  description = "The two availability zones, as suffixes of the region (eu-central-1 + a = eu-central-1a)."
  type        = list(string)
  default     = ["a", "b"]

  validation {
    condition     = length(var.availability_zone_suffixes) == 2 && alltrue([for suffix in var.availability_zone_suffixes : can(regex("^[a-z]$", suffix))])
    error_message = "availability_zone_suffixes needs exactly two single letters, e.g. [\"a\", \"b\"]."
  }
}

variable "public_subnet_cidrs" {
  description = "One public subnet per availability zone (internet-facing load balancers, NAT gateways)."
  type        = list(string)
  default     = ["10.0.0.0/20", "10.0.16.0/20"]

  validation {
    condition     = length(var.public_subnet_cidrs) == 2
    error_message = "public_subnet_cidrs needs exactly two CIDRs, one per availability zone."
  }
}

variable "private_subnet_cidrs" {
  description = "One private subnet per availability zone (nodes, pods, RDS); large because every pod takes a VPC address."
  type        = list(string)
  default     = ["10.0.64.0/18", "10.0.128.0/18"]

  validation {
    condition     = length(var.private_subnet_cidrs) == 2
    error_message = "private_subnet_cidrs needs exactly two CIDRs, one per availability zone."
  }
}

variable "cluster_public_access_cidrs" {
  description = "CIDRs allowed to reach the public Kubernetes API endpoint: your office or VPN and the deploy runners' egress (README.md)."
  type        = list(string)

  validation {
    condition     = length(var.cluster_public_access_cidrs) > 0 && alltrue([for cidr in var.cluster_public_access_cidrs : can(cidrhost(cidr, 0))])
    error_message = "cluster_public_access_cidrs needs at least one valid CIDR such as 203.0.113.0/24."
  }
}

variable "cluster_admin_arns" {
  description = "IAM role or user ARNs that get cluster-admin on EKS, besides whoever runs terraform apply."
  type        = list(string)
  default     = []
}

variable "cpu_node_group" {
  description = "The CPU node group (label wms.io/node-pool=cpu): Dagster, MLflow, serving pods."
  type = object({
    instance_types = list(string)
    min_size       = number
    desired_size   = number
    max_size       = number
    disk_size_gib  = number
  })
  default = {
    instance_types = ["m6i.xlarge"]
    min_size       = 1
    desired_size   = 2
    max_size       = 4
    disk_size_gib  = 50
  }
}

variable "gpu_node_group" {
  description = "The GPU node group (label wms.io/node-pool=gpu, taint nvidia.com/gpu=true:NoSchedule); it scales from 0 for training."
  type = object({
    instance_types = list(string)
    min_size       = number
    desired_size   = number
    max_size       = number
    disk_size_gib  = number
  })
  default = {
    instance_types = ["g5.xlarge"]
    min_size       = 0
    desired_size   = 0
    max_size       = 2
    disk_size_gib  = 100
  }
}

variable "github_repository" {
  description = "The GitHub repository (owner/name) whose workflows may assume the train, staging and production roles."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be owner/name, e.g. acme/wms, without wildcards."
  }
}

variable "github_train_branch" {
  description = "The only branch whose workflows may assume the train role."
  type        = string
  default     = "main"
}

variable "create_github_oidc_provider" {
  description = "Create the account's GitHub OIDC provider; set false when the account already has one (one per account)."
  type        = bool
  default     = true
}

variable "rds_instance_class" {
  description = "Instance class of both databases (Performance Insights needs db.t4g.medium or larger)."
  type        = string
  default     = "db.t4g.medium"
}

variable "rds_allocated_storage_gib" {
  description = "Initial storage of each database; storage autoscaling grows it up to rds_max_allocated_storage_gib."
  type        = number
  default     = 20
}

variable "rds_max_allocated_storage_gib" {
  description = "Storage autoscaling ceiling of each database."
  type        = number
  default     = 100
}

variable "rds_multi_az" {
  description = "Keep a standby in the second zone (set false to halve the cost of a non-production account)."
  type        = bool
  default     = true
}

variable "rds_backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery window)."
  type        = number
  default     = 14
}

variable "mysql_engine_version" {
  description = "RDS MySQL major version for MLflow; the parameter group family follows it."
  type        = string
  default     = "8.4"
}

variable "postgres_engine_version" {
  description = "RDS PostgreSQL major version for Dagster's storage; the parameter group family follows it."
  type        = string
  default     = "16"
}

variable "log_retention_days" {
  description = "Retention of the CloudWatch log groups (EKS control plane, RDS)."
  type        = number
  default     = 365
}

variable "noncurrent_version_retention_days" {
  description = "Days an overwritten or deleted S3 object version is kept before it expires."
  type        = number
  default     = 90
}
