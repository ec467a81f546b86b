# The EKS cluster and its two managed node groups. The CPU group (wms.io/node-pool=cpu) runs Dagster, MLflow and the
# serving pods; the GPU group (wms.io/node-pool=gpu, tainted nvidia.com/gpu=true:NoSchedule so that only pods that
# tolerate it land there) starts at zero nodes and grows when a training pod asks for a GPU. Access is by EKS access
# entries (no aws-auth ConfigMap): whoever applies this becomes cluster admin, plus cluster_admin_arns, and the GitHub
# roles get namespace-scoped rights (see github_oidc.tf).

locals {
  cluster_log_types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
}

data "aws_iam_policy_document" "eks_cluster_trust" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["eks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "cluster" {
  name               = "${var.name}-eks-cluster"
  assume_role_policy = data.aws_iam_policy_document.eks_cluster_trust.json
}

resource "aws_iam_role_policy_attachment" "cluster" {
  role       = aws_iam_role.cluster.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonEKSClusterPolicy"
}

data "aws_iam_policy_document" "cluster_secrets_encryption" {
  statement {
    sid       = "EnvelopeEncryptionOfKubernetesSecrets"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ListGrants", "kms:DescribeKey"]
    resources = [aws_kms_key.eks.arn]
  }
}

resource "aws_iam_role_policy" "cluster_secrets_encryption" {
  name   = "secrets-encryption"
  role   = aws_iam_role.cluster.id
  policy = data.aws_iam_policy_document.cluster_secrets_encryption.json
}

# Made before the cluster so that EKS writes into a group with a retention and a KMS key instead of creating its own.
resource "aws_cloudwatch_log_group" "eks" {
  name              = "/aws/eks/${local.cluster_name}/cluster"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.logs.arn
}

resource "aws_eks_cluster" "main" {
  #checkov:skip=CKV_AWS_38:public_access_cidrs is the required variable cluster_public_access_cidrs, which checkov renders as an empty list because it has no default; the engineer sets it to the admins' and deploy runners' egress CIDRs, and the check block api_open_to_the_internet warns at plan time if it is 0.0.0.0/0.
  #checkov:skip=CKV_AWS_39:The train and deploy workflows run kubectl and Helm from GitHub-hosted runners outside the VPC by default (vars.WMS_AWS_RUNNER names a self-hosted one), so the API needs a public endpoint; it admits only cluster_public_access_cidrs, and every caller still needs an IAM identity with an EKS access entry. Set endpoint_public_access = false once the jobs run inside the VPC.
  name                      = local.cluster_name
  version                   = var.kubernetes_version
  role_arn                  = aws_iam_role.cluster.arn
  enabled_cluster_log_types = local.cluster_log_types

  access_config {
    authentication_mode                         = "API"
    bootstrap_cluster_creator_admin_permissions = true
  }

  vpc_config {
    subnet_ids              = aws_subnet.private[*].id
    endpoint_private_access = true
    endpoint_public_access  = true
    public_access_cidrs     = var.cluster_public_access_cidrs
  }

  encryption_config {
    resources = ["secrets"]

    provider {
      key_arn = aws_kms_key.eks.arn
    }
  }

  depends_on = [
    aws_cloudwatch_log_group.eks,
    aws_iam_role_policy_attachment.cluster,
    aws_iam_role_policy.cluster_secrets_encryption,
  ]
}

# GitHub-hosted runners have no fixed addresses, so 0.0.0.0/0 is allowed (IAM and the access entries still decide who
# gets in), but the plan says so: prefer runners with a fixed egress address (README.md).
check "api_open_to_the_internet" {
  assert {
    condition     = !contains(var.cluster_public_access_cidrs, "0.0.0.0/0")
    error_message = "cluster_public_access_cidrs contains 0.0.0.0/0: the Kubernetes API endpoint is reachable from the whole internet, guarded by IAM authentication only."
  }
}

data "aws_iam_policy_document" "node_trust" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name               = "${var.name}-eks-node"
  assume_role_policy = data.aws_iam_policy_document.node_trust.json
}

# Nodes join the cluster, run the VPC CNI and pull images from ECR; pods get their AWS rights from IRSA, not from here.
resource "aws_iam_role_policy_attachment" "node" {
  for_each = toset(["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"])

  role       = aws_iam_role.node.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.key}"
}

# Encrypted gp3 root volumes and IMDSv2 with a hop limit of 1: pods cannot reach the node's instance metadata (and so
# not the node role's credentials); they use IRSA. EKS supplies the AMI and the bootstrap user data.
resource "aws_launch_template" "cpu" {
  name_prefix            = "${var.name}-cpu-"
  update_default_version = true

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = var.cpu_node_group.disk_size_gib
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "${var.name}-cpu" }
  }
}

resource "aws_launch_template" "gpu" {
  name_prefix            = "${var.name}-gpu-"
  update_default_version = true

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = var.gpu_node_group.disk_size_gib
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "${var.name}-gpu" }
  }
}

resource "aws_eks_node_group" "cpu" {
  cluster_name    = aws_eks_cluster.main.name
  node_group_name = "cpu"
  version         = aws_eks_cluster.main.version
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = aws_subnet.private[*].id
  ami_type        = "AL2023_x86_64_STANDARD"
  capacity_type   = "ON_DEMAND"
  instance_types  = var.cpu_node_group.instance_types
  labels          = { "wms.io/node-pool" = "cpu" }

  scaling_config {
    min_size     = var.cpu_node_group.min_size
    desired_size = var.cpu_node_group.desired_size
    max_size     = var.cpu_node_group.max_size
  }

  update_config {
    max_unavailable = 1
  }

  launch_template {
    id      = aws_launch_template.cpu.id
    version = aws_launch_template.cpu.latest_version
  }

  # The cluster autoscaler owns the node count once the group exists.
  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [aws_iam_role_policy_attachment.node]
}

# The AL2023 NVIDIA AMI brings the driver and the container toolkit; the NVIDIA device plugin (a DaemonSet, see
# README.md) advertises nvidia.com/gpu. The cluster autoscaler reads this group's label and taint from EKS to scale it
# up from zero when a pending pod selects wms.io/node-pool=gpu and tolerates nvidia.com/gpu.
resource "aws_eks_node_group" "gpu" {
  cluster_name    = aws_eks_cluster.main.name
  node_group_name = "gpu"
  version         = aws_eks_cluster.main.version
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = aws_subnet.private[*].id
  ami_type        = "AL2023_x86_64_NVIDIA"
  capacity_type   = "ON_DEMAND"
  instance_types  = var.gpu_node_group.instance_types
  labels          = { "wms.io/node-pool" = "gpu" }

  taint {
    key    = "nvidia.com/gpu"
    value  = "true"
    effect = "NO_SCHEDULE"
  }

  scaling_config {
    min_size     = var.gpu_node_group.min_size
    desired_size = var.gpu_node_group.desired_size
    max_size     = var.gpu_node_group.max_size
  }

  update_config {
    max_unavailable = 1
  }

  launch_template {
    id      = aws_launch_template.gpu.id
    version = aws_launch_template.gpu.latest_version
  }

  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [aws_iam_role_policy_attachment.node]
}

resource "aws_eks_access_entry" "admin" {
  for_each      = toset(var.cluster_admin_arns)
  cluster_name  = aws_eks_cluster.main.name
  principal_arn = each.key
  type          = "STANDARD"
}

resource "aws_eks_access_policy_association" "admin" {
  for_each      = aws_eks_access_entry.admin
  cluster_name  = aws_eks_cluster.main.name
  principal_arn = each.value.principal_arn
  policy_arn    = "arn:${local.partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"

  access_scope {
    type = "cluster"
  }
}
