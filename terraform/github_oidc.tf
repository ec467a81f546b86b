# GitHub Actions reach AWS through OIDC, without stored keys (.github/README.md). One role per workflow job, each
# trusted for exactly one subject of this repository (StringEquals, no wildcards), so forks, other branches, pull
# requests and the other jobs are refused:
#   train:      the train workflow on main - DVC and MLflow buckets, the cluster, Dagster's namespace;
#   staging:    deploy's job in environment staging - push wms-serving to ECR, Helm release into model-staging;
#   production: deploy's job in environment production (after its reviewers approve) - Helm release into model-prod.
# A job that names an environment gets the environment's subject instead of the branch's.

locals {
  github_oidc_host = "token.actions.githubusercontent.com"

  # The workflows only reach the cluster: they port-forward to the Dagster webserver (namespace dagster), submit
  # the job and read the stage's Deployment. The work itself (data, training, images, Helm) runs in the cluster
  # under the IRSA roles of iam.tf, so the GitHub roles need no S3 or ECR access.
  github_roles = {
    train = {
      subject    = "repo:${var.github_repository}:ref:refs/heads/${var.github_train_branch}"
      policies   = [data.aws_iam_policy_document.eks_describe.json]
      namespaces = ["dagster"]
    }
    staging = {
      subject    = "repo:${var.github_repository}:environment:staging"
      policies   = [data.aws_iam_policy_document.eks_describe.json]
      namespaces = ["dagster", local.serving_namespaces.staging]
    }
    production = {
      subject    = "repo:${var.github_repository}:environment:production"
      policies   = [data.aws_iam_policy_document.eks_describe.json]
      namespaces = ["dagster", local.serving_namespaces.prod]
    }
  }

  # See the note on thumbprints in iam.tf: these are GitHub's published ones.
  github_oidc_thumbprints = ["6938fd4d98bab03faadb97b34396831e3780aea1", "1c58a3a8518e8759bf075b76b750d4f2df264fcd"]
  github_oidc_provider_arn = (
    var.create_github_oidc_provider
    ? aws_iam_openid_connect_provider.github[0].arn
    : data.aws_iam_openid_connect_provider.github[0].arn
  )
}

resource "aws_iam_openid_connect_provider" "github" {
  count           = var.create_github_oidc_provider ? 1 : 0
  url             = "https://${local.github_oidc_host}"
  client_id_list  = ["sts.amazonaws.com"]
  thumbprint_list = local.github_oidc_thumbprints
}

data "aws_iam_openid_connect_provider" "github" {
  count = var.create_github_oidc_provider ? 0 : 1
  url   = "https://${local.github_oidc_host}"
}

data "aws_iam_policy_document" "github_trust" {
  for_each = local.github_roles

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [local.github_oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.github_oidc_host}:aud"
      values   = ["sts.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.github_oidc_host}:sub"
      values   = [each.value.subject]
    }
  }
}

resource "aws_iam_role" "github" {
  for_each           = local.github_roles
  name               = "${var.name}-github-${each.key}"
  description        = "GitHub Actions ${each.key} role of ${var.github_repository}"
  assume_role_policy = data.aws_iam_policy_document.github_trust[each.key].json
}

data "aws_iam_policy_document" "github" {
  for_each                = local.github_roles
  source_policy_documents = each.value.policies
}

resource "aws_iam_role_policy" "github" {
  for_each = local.github_roles
  name     = "access"
  role     = aws_iam_role.github[each.key].id
  policy   = data.aws_iam_policy_document.github[each.key].json
}

# Kubernetes rights: edit (workloads, services, config maps, secrets, port-forward; no RBAC) in the role's namespace
# only. Helm keeps its release records as Secrets in that namespace.
resource "aws_eks_access_entry" "github" {
  for_each      = local.github_roles
  cluster_name  = aws_eks_cluster.main.name
  principal_arn = aws_iam_role.github[each.key].arn
  type          = "STANDARD"
}

resource "aws_eks_access_policy_association" "github" {
  for_each      = local.github_roles
  cluster_name  = aws_eks_cluster.main.name
  principal_arn = aws_eks_access_entry.github[each.key].principal_arn
  policy_arn    = "arn:${local.partition}:eks::aws:cluster-access-policy/AmazonEKSEditPolicy"

  access_scope {
    type       = "namespace"
    namespaces = each.value.namespaces
  }
}
