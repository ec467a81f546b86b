# IRSA: each Kubernetes service account that touches AWS gets its own role, trusted only for that one service account
# through the cluster's OIDC issuer, with just the S3, KMS, ECR and Secrets Manager rights its pods use. The policy
# documents here are shared with the GitHub roles (github_oidc.tf).

locals {
  oidc_issuer_host = trimprefix(aws_eks_cluster.main.identity[0].oidc[0].issuer, "https://")

  # wms/deployment/stages.py: the release stages and their namespaces (the serving pods run as service account wms-serving).
  serving_namespaces = { staging = "model-staging", prod = "model-prod" }

  irsa_roles = {
    dagster = {
      subject = "system:serviceaccount:dagster:dagster"
      # Runs the asset graph: DVC data, MLflow artefacts, IO manager values, the image it builds and pushes, its database secret.
      policies = [
        data.aws_iam_policy_document.s3_read_write["dvc"].json,
        data.aws_iam_policy_document.s3_read_write["mlflow"].json,
        data.aws_iam_policy_document.s3_read_write["dagster"].json,
        data.aws_iam_policy_document.data_key_use.json,
        data.aws_iam_policy_document.ecr_login.json,
        data.aws_iam_policy_document.ecr_push["wms-serving"].json,
        data.aws_iam_policy_document.ecr_push["wms-training"].json,
        data.aws_iam_policy_document.database_secret_read["dagster"].json,
      ]
    }
    mlflow = {
      subject = "system:serviceaccount:mlflow:mlflow"
      # The tracking server proxies artefacts to S3 and reads its MySQL password.
      policies = [
        data.aws_iam_policy_document.s3_read_write["mlflow"].json,
        data.aws_iam_policy_document.data_key_use.json,
        data.aws_iam_policy_document.database_secret_read["mlflow"].json,
      ]
    }
    serving-staging = {
      subject  = "system:serviceaccount:${local.serving_namespaces.staging}:wms-serving"
      policies = [data.aws_iam_policy_document.mlflow_artifacts_read.json]
    }
    serving-prod = {
      subject  = "system:serviceaccount:${local.serving_namespaces.prod}:wms-serving"
      policies = [data.aws_iam_policy_document.mlflow_artifacts_read.json]
    }
    cluster-autoscaler = {
      subject  = "system:serviceaccount:kube-system:cluster-autoscaler"
      policies = [data.aws_iam_policy_document.cluster_autoscaler.json]
    }
  }

  # IAM trusts the EKS and GitHub issuers through its own library of root CAs and ignores thumbprints for them; the
  # API still wants one, so these are the issuers' published intermediate thumbprints.
  eks_oidc_thumbprint = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280"
}

resource "aws_iam_openid_connect_provider" "eks" {
  url             = aws_eks_cluster.main.identity[0].oidc[0].issuer
  client_id_list  = ["sts.amazonaws.com"]
  thumbprint_list = [local.eks_oidc_thumbprint]
}

data "aws_iam_policy_document" "irsa_trust" {
  for_each = local.irsa_roles

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.eks.arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer_host}:sub"
      values   = [each.value.subject]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer_host}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "irsa" {
  for_each           = local.irsa_roles
  name               = "${var.name}-${each.key}"
  description        = "IRSA role of ${each.value.subject}"
  assume_role_policy = data.aws_iam_policy_document.irsa_trust[each.key].json
}

data "aws_iam_policy_document" "irsa" {
  for_each                = local.irsa_roles
  source_policy_documents = each.value.policies
}

resource "aws_iam_role_policy" "irsa" {
  for_each = local.irsa_roles
  name     = "access"
  role     = aws_iam_role.irsa[each.key].id
  policy   = data.aws_iam_policy_document.irsa[each.key].json
}

# Read and write one data bucket (DVC push/pull/gc, MLflow artefacts); delete is needed by dvc gc and MLflow's GC.
data "aws_iam_policy_document" "s3_read_write" {
  for_each = local.data_buckets

  statement {
    sid       = "List${title(each.key)}Bucket"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [aws_s3_bucket.data[each.key].arn]
  }

  statement {
    sid       = "ReadWrite${title(each.key)}Objects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = ["${aws_s3_bucket.data[each.key].arn}/*"]
  }
}

# Objects and the RDS master secrets are encrypted with the data key.
data "aws_iam_policy_document" "data_key_use" {
  statement {
    sid       = "UseTheDataKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.data.arn]
  }
}

# The serving pods only read models from the MLflow artefact store.
data "aws_iam_policy_document" "mlflow_artifacts_read" {
  statement {
    sid       = "ListMlflowBucket"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.data["mlflow"].arn]
  }

  statement {
    sid       = "ReadMlflowObjects"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.data["mlflow"].arn}/*"]
  }

  statement {
    sid       = "DecryptWithTheDataKey"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.data.arn]
  }
}

# Log in to ECR. GetAuthorizationToken has no resource-level permissions: its resource must be "*".
data "aws_iam_policy_document" "ecr_login" {
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }
}

# Push (and pull) one of the project's image repositories.
data "aws_iam_policy_document" "ecr_push" {
  for_each = aws_ecr_repository.main

  statement {
    sid = "Push${replace(title(each.key), "-", "")}Images"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:CompleteLayerUpload",
      "ecr:DescribeImages",
      "ecr:DescribeRepositories",
      "ecr:GetDownloadUrlForLayer",
      "ecr:InitiateLayerUpload",
      "ecr:PutImage",
      "ecr:UploadLayerPart",
    ]
    resources = [each.value.arn]
  }
}

data "aws_iam_policy_document" "database_secret_read" {
  for_each = {
    mlflow  = aws_db_instance.mlflow.master_user_secret[0].secret_arn
    dagster = aws_db_instance.dagster.master_user_secret[0].secret_arn
  }

  statement {
    sid       = "Read${title(each.key)}DatabaseSecret"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = [each.value]
  }
}

data "aws_iam_policy_document" "eks_describe" {
  statement {
    sid       = "DescribeTheCluster"
    actions   = ["eks:DescribeCluster"]
    resources = [aws_eks_cluster.main.arn]
  }
}

# The cluster autoscaler: read the groups, then resize or shrink only this cluster's managed node groups (EKS tags their
# Auto Scaling groups k8s.io/cluster-autoscaler/<cluster>=owned). DescribeNodegroup gives it the GPU group's label and
# taint, which it needs to scale that group up from zero nodes.
data "aws_iam_policy_document" "cluster_autoscaler" {
  statement {
    sid = "DescribeScalingState"
    actions = [
      "autoscaling:DescribeAutoScalingGroups",
      "autoscaling:DescribeAutoScalingInstances",
      "autoscaling:DescribeLaunchConfigurations",
      "autoscaling:DescribeScalingActivities",
      "autoscaling:DescribeTags",
      "ec2:DescribeImages",
      "ec2:DescribeInstanceTypes",
      "ec2:DescribeLaunchTemplateVersions",
      "ec2:GetInstanceTypesFromInstanceRequirements",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "ResizeThisClustersNodeGroups"
    actions   = ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"]
    resources = ["arn:${local.partition}:autoscaling:${var.region}:${local.account_id}:autoScalingGroup:*:autoScalingGroupName/eks-*"]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/k8s.io/cluster-autoscaler/${local.cluster_name}"
      values   = ["owned"]
    }
  }

  statement {
    sid       = "ReadNodeGroupTemplates"
    actions   = ["eks:DescribeNodegroup"]
    resources = ["arn:${local.partition}:eks:${var.region}:${local.account_id}:nodegroup/${local.cluster_name}/*/*"]
  }
}
