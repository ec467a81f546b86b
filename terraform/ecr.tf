# Image repositories: wms-serving (TorchServe + the ONNX handler) and wms-training (the GPU training step's image).
# Tags are immutable, so a tag names one image forever (push each build under a new tag: the git SHA or model version);
# every push is scanned for known vulnerabilities; images are encrypted with the data key.

locals {
  ecr_repositories = toset(["wms-serving", "wms-training"])
}

resource "aws_ecr_repository" "main" {
  for_each             = local.ecr_repositories
  name                 = each.key
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.data.arn
  }
}

# Untagged layers left by failed or superseded pushes expire; tagged releases stay until someone deletes them.
resource "aws_ecr_lifecycle_policy" "main" {
  for_each   = aws_ecr_repository.main
  repository = each.value.name

  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Expire untagged images after 14 days"
      selection = {
        tagStatus   = "untagged"
        countType   = "sinceImagePushed"
        countUnit   = "days"
        countNumber = 14
      }
      action = { type = "expire" }
    }]
  })
}
