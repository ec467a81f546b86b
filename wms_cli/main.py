"""`wms`: the operations of the Dagster graph for people outside the Dagster UI."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from wms.core.local_state import DEFAULT_SERVE_PORT, MODEL_NAME, SERVE_PORT_VARIABLE, StateLayout, default_home
from wms.core.progress import Progress
from wms.deployment.stages import STAGES
from wms.monitoring.prometheus import DEFAULT_PORT as PROMETHEUS_PORT
from wms.training.settings import SETTINGS_ARE, parse_assignment

JOBS = {"lineage": "wms_lineage", "training": "wms_training", "staging": "wms_staging", "production": "wms_production"}
"""`wms run --job` names -> the Dagster jobs of wms_assets.definitions."""
DAGSTER_URL_VARIABLE = "WMS_DAGSTER_URL"
OUTSIDE_LINKS_HELP = "Count symbolic links to files outside the folder as its photos (rejected by default)."


def _print_version(context: click.Context, _parameter, wanted: bool) -> None:
    if not wanted or context.resilient_parsing:
        return
    from importlib.metadata import version

    from wms.core.gitinfo import current_git_sha

    click.echo(f"wms {version('wms')} (commit {current_git_sha()})")
    context.exit()


class WholeHelpGroup(click.Group):
    """A command group whose list of commands gives each one's first sentence whole, wrapped, not cut with '...'."""

    group_class = type

    def format_commands(self, context: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(context):
            command = self.get_command(context, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=WholeHelpGroup, context_settings={"max_content_width": 120})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Print the version and the commit checked out, then exit.",
)
def main() -> None:
    """WMS: train, version, gate, package, deploy and monitor U-Nets for water-meter photos.

    Results go to stdout, messages and errors to stderr. Exit codes: 0 done, 1 the work failed (a run, a check),
    2 the command cannot do what was asked (a wrong option, a missing model or folder).
    """


@contextmanager
def _progress_bar(description: str, unit: str) -> Iterator[Progress | None]:
    """A progress bar on stderr when it is a terminal, else nothing: stdout keeps only the results."""
    if not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(desc=description, unit=f" {unit}s", file=sys.stderr, leave=False) as bar:

        def advance(done: int, total: int) -> None:
            bar.total, bar.n = total, done
            bar.refresh()

        yield advance


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON object.")
def status(as_json: bool) -> None:
    """Champion and challenger, what the local TorchServe serves, the watched photos, Dagster's runs, Prometheus."""
    if _profile() == "aws":
        raise click.UsageError("`wms status` reads the local profile's state; on aws, the Dagster UI shows the runs")
    import dagster as dg

    from wms_assets.status import local_status

    current = local_status(_prepare_state(), dg.DagsterInstance.get())
    click.echo(json.dumps(current.as_json(), indent=2) if as_json else "\n".join(current.lines()))


def training_options(command):
    """The training settings that `wms run` and `wms data use` take (unset: the recorded ones, else the preset's)."""
    options = [
        click.option(
            "--preset",
            help="Training preset (wms/training/presets): demo (CPU, minutes), cpu (the quality target on a CPU, 1 to 3 "
            "hours on 2 cores) or full (on a GPU). Default: the one recorded for the watched photos (`wms data show`), "
            "else demo.",
        ),
        click.option(
            "--set",
            "assignments",
            multiple=True,
            metavar="KEY=VALUE",
            help=f"Change one setting of the preset, as often as needed: --set image_size=192 --set cycles= ({SETTINGS_ARE}; "
            "what each means: the trained_model config in the Dagster Launchpad).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _training_choices(preset: str | None, assignments: tuple[str, ...]) -> dict:
    """The preset and settings given on the command line, without the unset ones."""
    choices: dict = {"preset": preset} if preset else {}
    for text in assignments:
        try:
            name, value = parse_assignment(text)
        except ValueError as error:
            raise click.UsageError(str(error)) from error
        choices[name] = value
    return choices


@main.command()
@click.option(
    "--data",
    "data_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A real data folder (Kaggle layout): recorded as the watched photos, with this run's training settings, "
    "for every later run and the sensors (`wms data use` records it without a run).",
)
@training_options
@click.option("--from-scratch", is_flag=True, help="Train from random weights even when the champion could be fine-tuned.")
@click.option(
    "--job",
    type=click.Choice(list(JOBS)),
    default="lineage",
    show_default=True,
    help="lineage: everything; training: data to champion; staging: package, image, staging release; production: prod release.",
)
def run(data_dir: Path | None, from_scratch: bool, job: str, **training) -> None:
    """Materialize a job of the asset graph (the whole graph by default) and print how to use the result.

    The photos are the watched ones (`wms data show`; synthetic until a real folder is recorded). On the local profile
    the job runs in this process; on the aws profile it is submitted to the Dagster deployment at $WMS_DAGSTER_URL,
    which runs it on EKS, and this command waits for it.
    """
    chosen = _training_choices(**training)
    overrides = {**chosen, "start": "scratch"} if from_scratch else chosen
    if _profile() == "aws":
        _run_remotely(JOBS[job], overrides)
        return
    layout = _prepare_state()
    if data_dir:
        _record_source(layout, folder=data_dir, training=chosen, reason="wms run --data")
    source = _watched(layout)
    click.echo(f"photos: {source.describe()}")
    from wms_assets.run import materialize_job

    started = time.perf_counter()
    outcome = materialize_job({**source.training, **overrides}, job=JOBS[job])
    click.echo(outcome.summary())
    if not outcome.success:
        sys.exit(1)
    click.echo(f"\nThe job took {time.perf_counter() - started:.0f} s.")
    if outcome.release_url:
        click.echo(next_steps(layout, outcome.release_url, outcome.sample_photo))


def _watched(layout: StateLayout):
    from wms.data.watched import WatchedSourceError, read_watched

    try:
        return read_watched(layout.watched_source)
    except WatchedSourceError as error:
        raise click.UsageError(str(error)) from error


def _record_source(
    layout: StateLayout,
    training: dict,
    reason: str,
    folder: Path | None = None,
    pointer: Path | None = None,
    allow_outside_links: bool = False,
):
    """Record the watched photos and training settings, after checking both; print what changed."""
    from wms.data.watched import WatchedSourceError, folder_source, pointer_source, record_watched, synthetic_source
    from wms.training.settings import settings_for

    try:
        settings_for(training)
        if folder is not None:
            source = folder_source(folder, training, reason, allow_outside_links)
        elif pointer is not None:
            source = pointer_source(pointer, training, reason)
        else:
            source = synthetic_source(training, reason)
    except (ValueError, WatchedSourceError) as error:
        raise click.UsageError(str(error)) from error
    before = _watched(layout)
    recorded = record_watched(layout.watched_source, source)
    if (before.kind, before.location) != (recorded.kind, recorded.location):
        click.echo(f"watched photos: {before.label} -> {recorded.label} (recorded in {layout.watched_source})")
    return recorded


def _profile() -> str:
    from wms_assets.profiles import current_profile

    try:
        return current_profile()
    except ValueError as error:
        raise click.UsageError(str(error)) from error


def _run_remotely(job: str, overrides: dict) -> None:
    from wms_assets.remote import submit_and_wait

    url = os.environ.get(DAGSTER_URL_VARIABLE)
    if not url:
        raise click.UsageError(
            f"the aws profile submits jobs to its Dagster deployment: set {DAGSTER_URL_VARIABLE} to its webserver's address"
        )
    run_config = (
        {"ops": {"trained_model": {"config": overrides}}} if overrides and job in (JOBS["lineage"], JOBS["training"]) else {}
    )
    click.echo(f"submitting {job} to {url}")
    outcome = submit_and_wait(url, job, run_config)
    click.echo(f"run {outcome.run_id}: {outcome.status.value} ({outcome.url})")
    if not outcome.success:
        sys.exit(1)


def _prepare_state() -> StateLayout:
    layout = StateLayout(default_home())
    layout.create()
    os.environ.setdefault("DAGSTER_HOME", str(layout.dagster_home))
    return layout


@main.command()
@click.option("--reason", required=True, help="Why the champion is rolled back; recorded in the model's history.")
def rollback(reason: str) -> None:
    """Move `champion` back to the previous champion and release it; the rolled-back version is archived."""
    _prepare_state()
    from wms_assets.run import rollback_champion

    try:
        outcome = rollback_champion(reason)
    except LookupError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    click.echo(outcome.summary())
    sys.exit(0 if outcome.success else 1)


@main.group()
def models() -> None:
    """The registered model: versions, aliases, history."""


@models.command("history")
@click.option("--json", "as_json", is_flag=True, help="Print the history and the versions as one JSON object.")
def models_history(as_json: bool) -> None:
    """Which version was champion when, and why the champion moved; then every version's aliases and gate results."""
    from dataclasses import asdict

    from wms.inference.model_card import notice
    from wms.registry.gates import gate_outcomes, verdict
    from wms.registry.model_registry import ARCHIVED_TAG, CHAMPION, history_table
    from wms_assets.run import champion_registry

    _prepare_state()
    registry = champion_registry()
    if registry.finish_interrupted_move():
        click.echo("finished recording a champion move that was cut short (see the history's newest line)", err=True)
    events = registry.champion_history()
    aliases_of = registry.aliases_by_version()
    registered = registry.client.search_model_versions(f"name = '{registry.model_name}'")
    versions = [
        {
            "version": str(version.version),
            "aliases": sorted(aliases_of.get(str(version.version), [])),
            "test_mean_iou": version.tags.get("test_mean_iou"),
            "gates": {name: verdict(outcome) for name, outcome in gate_outcomes(version.tags).items()},
            "trained_on": version.tags.get("trained_on", "unknown"),
            "parent_version": version.tags.get("parent_version"),
            "archived": version.tags.get(ARCHIVED_TAG),
        }
        for version in sorted(registered, key=lambda v: int(v.version))
    ]
    if as_json:
        click.echo(json.dumps({"history": [asdict(event) for event in events], "versions": versions}, indent=2))
        return
    click.echo(history_table(events) if events else f"{registry.model_name} has had no champion yet")
    click.echo("")
    for version in versions:
        aliases = ", ".join(version["aliases"]) or "-"
        gate_list = ", ".join(f"{name} {outcome}" for name, outcome in sorted(version["gates"].items())) or "-"
        origin = f"  trained on {version['trained_on']}"
        if version["parent_version"]:
            origin += f", fine-tuned from version {version['parent_version']}"
        archived = f"  archived: {version['archived']}" if version["archived"] else ""
        iou = version["test_mean_iou"] or "?"
        click.echo(
            f"version {version['version']:>3}  aliases: {aliases:<22} test IoU {iou}  gates: {gate_list}{origin}{archived}"
        )
    champion = registry.version_by_alias(CHAMPION)
    warning = notice(champion.tags.get("trained_on")) if champion else None
    if warning:
        click.echo(f"\nThe champion, version {champion.version}: {warning}")


def next_steps(layout: StateLayout, url: str, sample_photo: str) -> str:
    from wms.serving.torchserve import LocalTorchServe

    server = LocalTorchServe.of_home(layout.torchserve_home)
    prediction = server.predict(MODEL_NAME, Path(sample_photo).read_bytes())
    prediction["mask_png_base64"] = f"<{len(prediction['mask_png_base64'])} base64 characters>"
    prediction["polygon"] = " ".join(f"{x},{y}" for x, y in prediction.get("polygon", []))
    venv_bin = Path(sys.executable).parent
    return "\n".join(
        [
            "",
            "Next:",
            f"  Dagster UI   DAGSTER_HOME={layout.dagster_home} {venv_bin / 'dagster'} dev -w workspace.yaml -p 3000",
            f"  MLflow UI    {venv_bin / 'mlflow'} ui --backend-store-uri {layout.mlflow_tracking_uri} -h 127.0.0.1 -p 5000",
            f"  Inference    POST {url}",
            f"  Try it       curl -s -X POST {url} -H 'Content-Type: application/octet-stream' --data-binary @{sample_photo}",
            f"  Masks        {venv_bin / 'wms'} predict --model champion --input DIR --output DIR",
            f"  Stop serving {venv_bin / 'wms'} serve stop",
            "",
            f"Sample prediction for {sample_photo}:",
            json.dumps(prediction, indent=2),
            "",
            f"The served model was trained on {_photos_label(prediction.get('trained_on', 'unknown'))}.",
            *([prediction["notice"]] if prediction.get("notice") else []),
        ]
    )


def _photos_label(trained_on: str) -> str:
    from wms.inference.model_card import SYNTHETIC

    return "synthetic photos" if trained_on == SYNTHETIC else f"the photos of {trained_on}"


@main.command()
@click.option(
    "--model",
    "model_ref",
    required=True,
    help="'champion', an MLflow URI (models:/<name>@<alias>) or a path to an exported .onnx model.",
)
@click.option("--input", "input_dir", required=True, type=click.Path(path_type=Path), help="Folder of photos.")
@click.option("--output", "output_dir", required=True, type=click.Path(path_type=Path), help="Folder for the PNG masks.")
@click.option(
    "--overlay",
    "overlay_dir",
    type=click.Path(path_type=Path),
    help="Folder for each photo with its window drawn on it (tinted and outlined), as <stem>.jpg.",
)
def predict(model_ref: str, input_dir: Path, output_dir: Path, overlay_dir: Path | None) -> None:
    """Write a 0/255 PNG mask, the size of the EXIF-turned photo, for each photo in a folder."""
    from wms.serving.batch import predict_folder, resolve_segmenter

    if not input_dir.is_dir():
        raise click.UsageError(f"--input {input_dir} is not a folder of photos")
    if not any(path.is_file() for path in input_dir.iterdir()):
        raise click.UsageError(f"--input {input_dir} holds no files: give a folder of photos (JPEG, PNG, WebP or BMP)")
    try:
        segmenter = resolve_segmenter(model_ref, StateLayout(default_home()))
    except LookupError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    with _progress_bar("masks", "photo") as on_progress:
        report = predict_folder(segmenter, input_dir, output_dir, on_progress, overlay_dir)
    for name, reason in report.failures.items():
        click.echo(f"skipped {name}: {reason}", err=True)
    click.echo(f"wrote {len(report.written)} mask(s) to {output_dir}; {len(report.failures)} file(s) skipped")
    if not report.written:
        sys.exit(1)


@main.group()
def serve() -> None:
    """The local TorchServe."""


@serve.command("start")
@click.option(
    "--model",
    "model_ref",
    required=True,
    help="'champion', an MLflow URI (models:/<name>@<alias> or models:/<name>/<n>) or a path to an exported .onnx model.",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535 - 7),
    envvar=SERVE_PORT_VARIABLE,
    default=DEFAULT_SERVE_PORT,
    show_default=True,
    help=f"Inference port (127.0.0.1), the first of eight; ${SERVE_PORT_VARIABLE} sets it too (and where `wms run` releases).",
)
def serve_start(model_ref: str, port: int) -> None:
    """Serve MODEL with TorchServe in the background on 127.0.0.1 and print the inference URL once it answers."""
    from wms.serving.local_serving import resolve_local_model, serve_model
    from wms.serving.torchserve import LocalTorchServe, TorchServeError

    layout = _prepare_state()
    try:
        model = resolve_local_model(model_ref, layout)
        url = serve_model(model, LocalTorchServe.on_port(layout.torchserve_home, port))
    except (LookupError, RuntimeError, TorchServeError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    click.echo(f"serving {MODEL_NAME} version {model.version} from {model.source}")
    click.echo(url)


@serve.command("status")
def serve_status() -> None:
    """Say whether the local TorchServe answers and which model version it serves."""
    from wms.serving.torchserve import LocalTorchServe

    server = LocalTorchServe.of_home(StateLayout(default_home()).torchserve_home)
    version = server.served_version(MODEL_NAME)
    click.echo(f"{MODEL_NAME} version {version} at {server.inference_url}" if version else "TorchServe is not serving WMS")


@serve.command("stop")
def serve_stop() -> None:
    """Stop the local TorchServe."""
    from wms.serving.torchserve import LocalTorchServe

    LocalTorchServe.of_home(StateLayout(default_home()).torchserve_home).stop()
    click.echo("TorchServe stopped")


@serve.group("canary")
def serve_canary() -> None:
    """A candidate version beside the one in service, taking a share of the requests that name no version."""


def _canary_call(action):
    """Run one canary action on the local server: its answer on stdout, a refusal (nothing changed) on stderr, exit 2."""
    from wms.serving.torchserve import LocalTorchServe, TorchServeError

    server = LocalTorchServe.of_home(StateLayout(default_home()).torchserve_home)
    try:
        return server, action(server)
    except (LookupError, ValueError, RuntimeError, TorchServeError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)


@serve_canary.command("start")
@click.option("--model", "model_ref", required=True, help="The candidate: as `wms serve start --model` takes it.")
@click.option("--weight", type=int, default=0, show_default=True, help="Its share of the requests, 0 to 100 percent.")
def serve_canary_start(model_ref: str, weight: int) -> None:
    """Serve MODEL beside the version in service (smoke-tested on its own path first) with WEIGHT percent of the
    requests that name no version."""
    from wms.serving.local_serving import resolve_local_model
    from wms.serving.torchserve import build_archive

    def start(server):
        model = resolve_local_model(model_ref, _prepare_state())
        archive = build_archive(model.onnx_path, MODEL_NAME, model.version, server.model_store)
        server.start_canary(archive, MODEL_NAME, model.version, weight)
        return model.version

    _, version = _canary_call(start)
    click.echo(f"canary: version {version} takes {weight} % of the requests")


@serve_canary.command("weight")
@click.argument("weight", type=int)
def serve_canary_weight(weight: int) -> None:
    """Give the running canary WEIGHT percent (0-100) of the requests that name no version."""
    _canary_call(lambda server: server.set_canary_weight(MODEL_NAME, weight))
    click.echo(f"canary: {weight} %")


@serve_canary.command("promote")
def serve_canary_promote() -> None:
    """Send every request to the candidate and retire the version it replaces (the champion alias is not moved)."""
    server, retired = _canary_call(lambda server: server.promote_canary(MODEL_NAME))
    click.echo(f"version {server.served_version(MODEL_NAME)} serves everything; version {retired} retired")


@serve_canary.command("retire")
def serve_canary_retire() -> None:
    """Send every request back to the version in service and retire the candidate."""
    _, candidate = _canary_call(lambda server: server.retire_canary(MODEL_NAME))
    click.echo(f"candidate {candidate} retired")


@serve_canary.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print {in_service, candidate, weight} as JSON.")
def serve_canary_status(as_json: bool) -> None:
    """The version in service and the candidate beside it, with its share."""
    server, canary = _canary_call(lambda server: server.canary(MODEL_NAME))
    state = {
        "in_service": server.served_version(MODEL_NAME),
        "candidate": canary.version if canary else None,
        "weight": canary.weight if canary else None,
    }
    if as_json:
        click.echo(json.dumps(state))
    elif state["in_service"] is None:
        click.echo("TorchServe is not serving WMS")
    elif canary is None:
        click.echo(f"no canary; version {state['in_service']} serves every request")
    else:
        click.echo(f"version {canary.version} takes {canary.weight} %, version {state['in_service']} the rest")


@main.group()
def data() -> None:
    """Data sets."""


@data.command("use")
@click.argument("folder", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--dvc-pointer", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Watch a .dvc pointer instead.")
@click.option("--synthetic", is_flag=True, help="Go back to the generated synthetic photos.")
@click.option("--allow-outside-links", is_flag=True, help=OUTSIDE_LINKS_HELP)
@training_options
def data_use(folder: Path | None, dvc_pointer: Path | None, synthetic: bool, allow_outside_links: bool, **training) -> None:
    """Record FOLDER (images/ and masks/) as the watched photos, with the training settings of the automatic runs.

    The Dagster UI, the daemon's sensors and `wms run` all read this record: the data sensor starts a lineage run when
    the watched photos' content differs from the last data set made. The change is appended to a history
    (`wms data show`).
    """
    if sum((folder is not None, dvc_pointer is not None, synthetic)) != 1:
        raise click.UsageError("give exactly one of FOLDER, --dvc-pointer FILE or --synthetic")
    if allow_outside_links and folder is None:
        raise click.UsageError("--allow-outside-links is about the links in a watched FOLDER: give the folder too")
    layout = _prepare_state()
    choices = _training_choices(**training)
    recorded = _record_source(layout, choices, "wms data use", folder, dvc_pointer, allow_outside_links)
    click.echo(f"watching {recorded.describe()}")


@data.command("show")
def data_show() -> None:
    """Print the watched photos and training settings of the automatic runs, and every change recorded."""
    from wms.data.watched import watched_history

    layout = _prepare_state()
    click.echo(f"watching {_watched(layout).describe()}")
    for change in watched_history(layout.watched_source):
        click.echo(f"  {change.set_at}  {change.label}  ({change.reason}; training {change.training or 'defaults'})")


@data.command("validate")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--workers", default=2, show_default=True, help="Processes that decode and check pairs.")
@click.option("--allow-outside-links", is_flag=True, help=OUTSIDE_LINKS_HELP)
def data_validate(folder: Path, workers: int, allow_outside_links: bool) -> None:
    """Check every image/mask pair of FOLDER and print the report as JSON (valid count, rejected files with reasons)."""
    from wms.data.pairs import DatasetLayoutError
    from wms.data.validation import validate_folder

    try:
        with _progress_bar("validation", "pair") as on_progress:
            report = validate_folder(folder, workers=workers, allow_outside_links=allow_outside_links, on_progress=on_progress)
    except DatasetLayoutError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    click.echo(json.dumps(report.as_json(), indent=2))
    if not report.valid:
        click.echo(f"error: no valid image/mask pair in {folder}: see the reasons above", err=True)
        sys.exit(1)


@data.command("generate")
@click.option("--output", required=True, type=click.Path(path_type=Path), help="Folder to write images/ and masks/ into.")
@click.option("--count", default=160, show_default=True, help="Number of image/mask pairs.")
@click.option("--seed", default=0, show_default=True, help="Seed; the same seed gives the same files.")
def data_generate(output: Path, count: int, seed: int) -> None:
    """Generate a synthetic data set in the Kaggle Water Meters layout."""
    from wms.data.synthetic import SyntheticSpec, generate_dataset

    names = generate_dataset(output, SyntheticSpec(count=count, seed=seed))
    click.echo(f"wrote {len(names)} pairs to {output}")


@main.group()
def release() -> None:
    """The serving release on EKS: the Helm chart in helm/wms-serving."""


@release.command("render")
@click.option("--stage", "stage_name", required=True, type=click.Choice(list(STAGES)), help="The stage to render.")
@click.option(
    "--output", required=True, type=click.Path(file_okay=False, path_type=Path), help="A new or empty folder for the manifests."
)
@click.option("--model-version", required=True, help="The registered model version that the image holds, e.g. 7.")
@click.option("--image", required=True, help="The serving image pinned by digest: REPOSITORY@sha256:<64 hex digits>, as pushed.")
def release_render(stage_name: str, output: Path, model_version: str, image: str) -> None:
    """Write the manifests that `helm upgrade --install` would apply for STAGE, one file per template.

    The image and version are required, with no default: a release pins one image by digest, and a render is a
    look at exactly such a release.
    """
    from wms.deployment.helm_release import HelmReleaseError, render, write_manifests

    try:
        written = write_manifests(render(stage_name, model_version, image), output)
    except HelmReleaseError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    for path in written:
        click.echo(str(path))
    click.echo(f"wrote {len(written)} manifests of the {stage_name} release ({STAGES[stage_name].namespace}) to {output}")


@main.group()
def dashboards() -> None:
    """Grafana dashboards as code (wms/monitoring/dashboards.py): the serving dashboard of each stage."""


@dashboards.command("export")
@click.option(
    "--output", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder for one dashboard JSON per stage."
)
@click.option(
    "--config-maps",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write a ConfigMap per EKS stage for Grafana's dashboard sidecar into this folder.",
)
def dashboards_export(output: Path, config_maps: Path | None) -> None:
    """Write the dashboards of staging, prod and local as JSON (what monitoring/grafana/dashboards/ holds).

    Regenerate the committed files with
    `wms dashboards export --output monitoring/grafana/dashboards --config-maps monitoring/grafana/provisioning`.
    """
    from wms.monitoring.dashboards import export, export_config_maps

    written = export(output)
    if config_maps is not None:
        written += export_config_maps(config_maps)
    for path in written:
        click.echo(str(path))


@main.group()
def monitor() -> None:
    """A local Prometheus beside the local TorchServe, with the serving rules (monitoring/prometheus)."""


def _local_prometheus(port: int = PROMETHEUS_PORT, rules: Path | None = None):
    from wms.monitoring.prometheus import RULES, LocalPrometheus
    from wms.serving.torchserve import LocalTorchServe

    layout = StateLayout(default_home())
    server = LocalTorchServe.of_home(layout.torchserve_home)
    return LocalPrometheus(
        layout.home / "prometheus",
        server.metrics_port,
        server.handler_metrics_port,
        port=port,
        host=server.host,
        rules_file=rules or RULES,
    )


@monitor.command("start")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=PROMETHEUS_PORT, show_default=True, help="Prometheus' port (127.0.0.1)."
)
@click.option(
    "--rules",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The recording and alerting rules (default: the checkout's monitoring/prometheus/rules.yml).",
)
def monitor_start(port: int, rules: Path | None) -> None:
    """Start Prometheus in the background, scraping the local TorchServe (`wms serve start`) and evaluating the rules."""
    from wms.monitoring.prometheus import MonitoringError

    prometheus = _local_prometheus(port, rules)
    try:
        prometheus.start()
    except MonitoringError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    click.echo(f"Prometheus at {prometheus.url} (rules: {prometheus.url}/rules, targets: {prometheus.url}/targets)")


@monitor.command("status")
def monitor_status() -> None:
    """Say whether the local Prometheus runs, and where."""
    prometheus = _local_prometheus()
    click.echo(f"Prometheus runs from {prometheus.home}" if prometheus.running() else "Prometheus is not running")


@monitor.command("stop")
def monitor_stop() -> None:
    """Stop the local Prometheus."""
    click.echo("Prometheus stopped" if _local_prometheus().stop() else "Prometheus was not running")
