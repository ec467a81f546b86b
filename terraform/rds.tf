# The two databases: RDS MySQL for the MLflow tracking server and RDS PostgreSQL for Dagster's run, event and schedule
# storage. Both live in the private subnets, are reachable only from the EKS nodes, are encrypted at rest and demand
# TLS, and their master password is generated and rotated by RDS in Secrets Manager (nothing secret in the state).

locals {
  # Log types each engine exports to CloudWatch; the log groups are made here first so they get KMS and a retention.
  rds_log_exports = {
    mlflow  = ["error", "slowquery"]
    dagster = ["postgresql", "upgrade"]
  }
  rds_log_groups = merge([
    for database, logs in local.rds_log_exports : {
      for log in logs : "${database}/${log}" => "/aws/rds/instance/${var.name}-${database}/${log}"
    }
  ]...)
  rds_ca_certificate = "rds-ca-rsa2048-g1"
}

resource "aws_db_subnet_group" "main" {
  name       = "${var.name}-private"
  subnet_ids = aws_subnet.private[*].id
}

resource "aws_security_group" "mlflow_db" {
  name        = "${var.name}-mlflow-db"
  description = "MLflow MySQL: only pods on the EKS nodes may connect"
  vpc_id      = aws_vpc.main.id

  ingress {
    description     = "MySQL from the EKS cluster security group (nodes and pods)"
    from_port       = 3306
    to_port         = 3306
    protocol        = "tcp"
    security_groups = [aws_eks_cluster.main.vpc_config[0].cluster_security_group_id]
  }
}

resource "aws_security_group" "dagster_db" {
  name        = "${var.name}-dagster-db"
  description = "Dagster PostgreSQL: only pods on the EKS nodes may connect"
  vpc_id      = aws_vpc.main.id

  ingress {
    description     = "PostgreSQL from the EKS cluster security group (nodes and pods)"
    from_port       = 5432
    to_port         = 5432
    protocol        = "tcp"
    security_groups = [aws_eks_cluster.main.vpc_config[0].cluster_security_group_id]
  }
}

resource "aws_db_parameter_group" "mlflow" {
  name_prefix = "${var.name}-mlflow-"
  family      = "mysql${var.mysql_engine_version}"

  parameter {
    name  = "require_secure_transport"
    value = "1"
  }

  parameter {
    name  = "slow_query_log"
    value = "1"
  }

  parameter {
    name  = "long_query_time"
    value = "2"
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_db_parameter_group" "dagster" {
  name_prefix = "${var.name}-dagster-"
  family      = "postgres${var.postgres_engine_version}"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name  = "log_statement"
    value = "ddl"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_cloudwatch_log_group" "rds" {
  for_each          = local.rds_log_groups
  name              = each.value
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.logs.arn
}

data "aws_iam_policy_document" "rds_monitoring_trust" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "rds_monitoring" {
  name               = "${var.name}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.rds_monitoring_trust.json
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_db_instance" "mlflow" {
  identifier     = "${var.name}-mlflow"
  engine         = "mysql"
  engine_version = var.mysql_engine_version
  instance_class = var.rds_instance_class
  db_name        = "mlflow"
  username       = "mlflow"

  manage_master_user_password   = true
  master_user_secret_kms_key_id = aws_kms_key.data.arn

  allocated_storage     = var.rds_allocated_storage_gib
  max_allocated_storage = var.rds_max_allocated_storage_gib
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = aws_kms_key.data.arn

  db_subnet_group_name   = aws_db_subnet_group.main.name
  vpc_security_group_ids = [aws_security_group.mlflow_db.id]
  publicly_accessible    = false
  multi_az               = var.rds_multi_az
  parameter_group_name   = aws_db_parameter_group.mlflow.name
  ca_cert_identifier     = local.rds_ca_certificate

  iam_database_authentication_enabled = true
  auto_minor_version_upgrade          = true
  backup_retention_period             = var.rds_backup_retention_days
  backup_window                       = "01:00-02:00"
  maintenance_window                  = "sun:02:30-sun:03:30"
  copy_tags_to_snapshot               = true
  deletion_protection                 = true
  skip_final_snapshot                 = false
  final_snapshot_identifier           = "${var.name}-mlflow-final"

  enabled_cloudwatch_logs_exports       = local.rds_log_exports.mlflow
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.rds_monitoring.arn
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.data.arn
  performance_insights_retention_period = 7

  depends_on = [aws_cloudwatch_log_group.rds, aws_iam_role_policy_attachment.rds_monitoring]
}

resource "aws_db_instance" "dagster" {
  identifier     = "${var.name}-dagster"
  engine         = "postgres"
  engine_version = var.postgres_engine_version
  instance_class = var.rds_instance_class
  db_name        = "dagster"
  username       = "dagster"

  manage_master_user_password   = true
  master_user_secret_kms_key_id = aws_kms_key.data.arn

  allocated_storage     = var.rds_allocated_storage_gib
  max_allocated_storage = var.rds_max_allocated_storage_gib
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = aws_kms_key.data.arn

  db_subnet_group_name   = aws_db_subnet_group.main.name
  vpc_security_group_ids = [aws_security_group.dagster_db.id]
  publicly_accessible    = false
  multi_az               = var.rds_multi_az
  parameter_group_name   = aws_db_parameter_group.dagster.name
  ca_cert_identifier     = local.rds_ca_certificate

  iam_database_authentication_enabled = true
  auto_minor_version_upgrade          = true
  backup_retention_period             = var.rds_backup_retention_days
  backup_window                       = "01:00-02:00"
  maintenance_window                  = "sun:02:30-sun:03:30"
  copy_tags_to_snapshot               = true
  deletion_protection                 = true
  skip_final_snapshot                 = false
  final_snapshot_identifier           = "${var.name}-dagster-final"

  enabled_cloudwatch_logs_exports       = local.rds_log_exports.dagster
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.rds_monitoring.arn
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.data.arn
  performance_insights_retention_period = 7

  depends_on = [aws_cloudwatch_log_group.rds, aws_iam_role_policy_attachment.rds_monitoring]
}
