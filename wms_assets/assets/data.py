"""Data assets: the raw photo folder, and the data set versioned with DVC."""

import json
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from wms.data.pairs import Pair, mirror_pairs, split_pairs
from wms.data.validation import validate_folder
from wms.data.versioning import DvcRepository, directory_md5
from wms_assets.constants import DATA_FOLDER, DATA_STAGE, LINEAGE_GROUP, SOURCE_VERSION
from wms_assets.resources import DvcStorage, RawImageSource


@dataclass(frozen=True)
class RawPhotos:
    """The folder the photos were read from, and what a model trained on them says it was trained on."""

    folder: str
    source: str
    """'synthetic', or the watched folder or .dvc pointer."""
    allow_outside_links: bool = False


@dataclass(frozen=True)
class VersionedDataset:
    """A DVC-tracked folder in the Kaggle layout and the file names of each split."""

    root: str
    data_version: str
    splits: dict[str, list[str]]
    validation: dict
    pixel_digests: dict[str, str]
    repository: DvcRepository | None = None
    pointer: str = ""
    """The .dvc pointer's text: with the repository's remote, enough to pull this exact version anywhere."""
    source: str = "synthetic"
    """Where the photos came from: 'synthetic', or the watched folder or .dvc pointer."""

    def pairs(self, split: str) -> list[Pair]:
        root = self.local_root()
        return [Pair(image=root / "images" / name, mask=root / "masks" / name) for name in self.splits[split]]

    def local_root(self) -> Path:
        """The folder on this machine; pulled from the DVC remote first when this is another machine or pod than
        the one that made it (dagster-k8s runs each step of the training job in a pod of its own)."""
        root = Path(self.root)
        if not root.is_dir() and self.repository and self.pointer:
            self.repository.restore(DATA_FOLDER, self.pointer)
        return root


@dg.asset(group_name=LINEAGE_GROUP, tags=DATA_STAGE, kinds={"python"})
def raw_images(context: dg.AssetExecutionContext, raw_source: RawImageSource) -> dg.Output[RawPhotos]:
    """The folder of photos and masks in the Kaggle Water Meters layout: the watched source (`wms data show`)."""
    source = raw_source.watched()
    folder = raw_source.resolve(source)
    images = sum(1 for _ in (folder / "images").glob("*"))
    context.log.info("reading %d photos from %s (%s)", images, folder, source.describe())
    return dg.Output(
        RawPhotos(str(folder), source.label, source.allow_outside_links),
        metadata={
            "folder": dg.MetadataValue.path(str(folder)),
            "photos": images,
            "source": source.label,
            "synthetic": source.is_synthetic,
            "recorded_at": source.set_at or "never (default: synthetic)",
        },
    )


@dg.asset(group_name=LINEAGE_GROUP, tags=DATA_STAGE, kinds={"dvc"})
def dataset(context: dg.AssetExecutionContext, raw_images: RawPhotos, dvc: DvcStorage) -> dg.Output[VersionedDataset]:
    """Valid image/mask pairs copied into the DVC repository, tracked, pushed, and split by content hash."""
    report = validate_folder(Path(raw_images.folder), allow_outside_links=raw_images.allow_outside_links)
    if not report.valid:
        raise dg.Failure(
            f"no valid image/mask pair in {raw_images.folder}",
            metadata={"rejected": dg.MetadataValue.json(report.rejected[:100])},
        )
    repository = dvc.repository()
    repository.ensure()
    changed = mirror_pairs(report.valid, repository.root / DATA_FOLDER)
    data_version = repository.track(DATA_FOLDER)
    root = repository.root / DATA_FOLDER
    report_path = repository.root / f"{DATA_FOLDER}.validation.json"
    report_path.write_text(json.dumps(report.as_json(), indent=2))
    splits = {name: sorted(pair.name for pair in pairs) for name, pairs in split_pairs(report.valid, report.file_digests).items()}
    context.log.info("data version %s (%d files changed)", data_version, changed)
    return dg.Output(
        VersionedDataset(
            str(root),
            data_version,
            splits,
            report.as_json(),
            report.pixel_digests,
            repository,
            repository.pointer_path(DATA_FOLDER).read_text(),
            raw_images.source,
        ),
        data_version=dg.DataVersion(data_version),
        metadata={
            "dvc_md5": data_version,
            SOURCE_VERSION: directory_md5(Path(raw_images.folder)),
            "source": raw_images.source,
            "valid_pairs": len(report.valid),
            "rejected": len(report.rejected),
            "rejected_files": dg.MetadataValue.json(report.rejected[:100]),
            "validation_report": dg.MetadataValue.path(str(report_path)),
            "mean_mask_fraction": dg.MetadataValue.float(report.as_json()["mask_fraction"]["mean"]),
            **{f"{name}_images": len(names) for name, names in splits.items()},
            "files_changed": changed,
            "dvc_remote": dvc.remote_url,
        },
    )
