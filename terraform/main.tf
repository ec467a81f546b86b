# The provider, the account facts every other file builds names and ARNs from, and the two availability zones.

provider "aws" {
  region = var.region

  default_tags {
    tags = merge({ Project = var.name, ManagedBy = "terraform" }, var.tags)
  }
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

# The zones are pinned by name (region + suffix), so the set cannot grow when AWS adds a zone; the postcondition stops
# the plan with a clear message where a suffix does not exist or is not offered to this account.
data "aws_availability_zones" "selected" {
  state = "available"

  filter {
    name   = "zone-name"
    values = [for suffix in var.availability_zone_suffixes : "${var.region}${suffix}"]
  }

  lifecycle {
    postcondition {
      condition     = length(self.names) == length(var.availability_zone_suffixes)
      error_message = "Not every zone in availability_zone_suffixes is available in ${var.region} for this account (found ${join(", ", self.names)}): pick two suffixes from `aws ec2 describe-availability-zones`."
    }
  }
}

locals {
  account_id   = data.aws_caller_identity.current.account_id
  partition    = data.aws_partition.current.partition
  cluster_name = var.name

  # Two zones: EKS needs subnets in at least two, and so does an RDS subnet group.
  azs = data.aws_availability_zones.selected.names
}
