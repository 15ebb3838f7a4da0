"""Dataset-card facts for every source dataset the loaders read: licence, citation, description.

A republished copy must carry the terms of the original; these constants are what
:func:`hf_fiqa.data.publish.publish_dataset` writes into each card. Licence identifiers are
Hub licence tags; ``"other"`` comes with ``license_name``/``license_link``. The terms are
summarised - the linked pages are authoritative, and several sets forbid redistribution
outright (K-Face, MS-Celeb-1M): publish those only to private repositories, if at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CardInfo:
    """What a dataset card says about its source."""

    pretty_name: str
    description: str
    license: str
    citation: str
    license_name: str | None = None
    license_link: str | None = None
    terms: str = ""
    homepage: str | None = None
    task_categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    extra_metadata: dict = field(default_factory=dict)


KONIQ10K = CardInfo(
    pretty_name="KonIQ-10k",
    description=(
        "10,073 in-the-wild photos (from YFCC100M) with crowd-sourced quality ratings: 1.2 million ratings by "
        "1,459 workers on a 1-5 scale. Columns: `mos` (1-5 mean), `mos_std` (standard deviation on 1-5), "
        "`mos_zscore` (0-100 rescaled z-score MOS), `distribution` (counts of ratings 1..5), `num_ratings`. "
        "Splits are the official `set` column (7,058 / 1,000 / 2,015)."
    ),
    license="other",
    license_name="koniq-10k-terms",
    license_link="https://database.mmsp-kn.de/koniq-10k-database.html",
    terms="Images come from Flickr under Creative Commons licences; see the database page for the terms of use.",
    homepage="https://database.mmsp-kn.de/koniq-10k-database.html",
    citation="""@article{hosu2020koniq,
  title   = {KonIQ-10k: An Ecologically Valid Database for Deep Learning of Blind Image Quality Assessment},
  author  = {Hosu, Vlad and Lin, Hanhe and Sziranyi, Tamas and Saupe, Dietmar},
  journal = {IEEE Transactions on Image Processing},
  volume  = {29},
  pages   = {4041--4056},
  year    = {2020}
}""",
    task_categories=("image-classification",),
    tags=("image-quality-assessment", "no-reference-iqa"),
)

TID2013 = CardInfo(
    pretty_name="TID2013",
    description=(
        "Tampere Image Database 2013: 25 reference images (from the Kodak set) with 24 distortion types at 5 "
        "levels each (3,000 distorted images, 512x384), mean opinion scores 0-9 from 971 observers. Splits are "
        "made by reference image, so no content appears in two splits."
    ),
    license="other",
    license_name="tid2013-terms",
    license_link="https://www.ponomarenko.info/tid2013.htm",
    terms="Free for research use; cite the papers below.",
    homepage="https://www.ponomarenko.info/tid2013.htm",
    citation="""@article{ponomarenko2015tid2013,
  title   = {Image database TID2013: Peculiarities, results and perspectives},
  author  = {Ponomarenko, Nikolay and Jin, Lina and Ieremeiev, Oleg and Lukin, Vladimir and Egiazarian, Karen
             and Astola, Jaakko and Vozel, Benoit and Chehdi, Kacem and Carli, Marco and Battisti, Federica
             and Kuo, C.-C. Jay},
  journal = {Signal Processing: Image Communication},
  volume  = {30},
  pages   = {57--77},
  year    = {2015}
}""",
    task_categories=("image-classification",),
    tags=("image-quality-assessment", "full-reference-iqa"),
)

FFHQ = CardInfo(
    pretty_name="Flickr-Faces-HQ (FFHQ)",
    description=(
        "70,000 high-quality face images crawled from Flickr, aligned and cropped with dlib (1024x1024 originals). "
        "No quality labels. With the official metadata: per-image Flickr licence, author, country, URL and the 68 "
        "landmarks used for alignment; official split training 60,000 / validation 10,000."
    ),
    license="cc-by-nc-sa-4.0",
    terms=(
        "The dataset as a whole is CC BY-NC-SA 4.0 (NVIDIA); each image keeps its own Flickr licence (CC BY 2.0, "
        "CC BY-NC 2.0, Public Domain Mark 1.0, CC0 1.0 or U.S. Government Works), given per row."
    ),
    homepage="https://github.com/NVlabs/ffhq-dataset",
    citation="""@inproceedings{karras2019style,
  title     = {A Style-Based Generator Architecture for Generative Adversarial Networks},
  author    = {Karras, Tero and Laine, Samuli and Aila, Timo},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages     = {4401--4410},
  year      = {2019}
}""",
    task_categories=("unconditional-image-generation", "image-classification"),
    tags=("faces",),
)

MS1M = CardInfo(
    pretty_name="MS1MV2 (MS-Celeb-1M, ArcFace clean-up)",
    description=(
        "MS-Celeb-1M as cleaned and aligned for ArcFace training (MS1MV2 / faces_emore): about 5.8 million "
        "112x112 aligned face crops of 85,742 identities, converted from the insightface RecordIO release. "
        "`identity` is the class index used in training; `key` is the record key in train.rec."
    ),
    license="other",
    license_name="ms-celeb-1m-research-only",
    license_link="https://github.com/deepinsight/insightface/tree/master/recognition/_datasets_",
    terms=(
        "Microsoft withdrew MS-Celeb-1M in 2019. insightface distributes MS1MV2 for non-commercial research only. "
        "Do not publish this conversion publicly."
    ),
    homepage="https://github.com/deepinsight/insightface/tree/master/recognition/_datasets_",
    citation="""@inproceedings{guo2016msceleb,
  title     = {MS-Celeb-1M: A Dataset and Benchmark for Large-Scale Face Recognition},
  author    = {Guo, Yandong and Zhang, Lei and Hu, Yuxiao and He, Xiaodong and Gao, Jianfeng},
  booktitle = {European Conference on Computer Vision (ECCV)},
  year      = {2016}
}
@inproceedings{deng2019arcface,
  title     = {ArcFace: Additive Angular Margin Loss for Deep Face Recognition},
  author    = {Deng, Jiankang and Guo, Jia and Xue, Niannan and Zafeiriou, Stefanos},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages     = {4690--4699},
  year      = {2019}
}""",
    task_categories=("image-classification",),
    tags=("faces", "face-recognition"),
)

KFACE = CardInfo(
    pretty_name="K-Face (AIHub Korean face images)",
    description=(
        "Korean face images captured by KIST under controlled conditions: 400 identities x 6 accessory settings "
        "(S001-S006) x 30 lighting conditions (L1-L30) x 3 expressions (E01-E03) x 20 camera angles (C1-C20), at "
        "high/middle/low resolution, with face boxes where the release provides them."
    ),
    license="other",
    license_name="aihub-terms",
    license_link="https://aihub.or.kr",
    terms=(
        "Distributed by AIHub (NIA, Korea) to registered users under the AIHub terms of use, which forbid "
        "redistribution. Publish only to a private repository for your own use."
    ),
    homepage="https://aihub.or.kr",
    citation="""@article{choi2021kface,
  title   = {K-FACE: A Large-Scale KIST Face Database in Consideration with Unconstrained Environments},
  author  = {Choi, Yeji and Park, Hyunjung and Nam, Gi Pyo and Kim, Haksub and Choi, Heeseung and Cho, Junghyun
             and Kim, Ig-Jae},
  journal = {arXiv preprint arXiv:2103.02211},
  year    = {2021}
}""",
    task_categories=("image-classification",),
    tags=("faces", "face-recognition"),
)

CELEBA = CardInfo(
    pretty_name="CelebA (in-the-wild photos by identity)",
    description="Unaligned CelebA in-the-wild photos grouped by identity (`identity` is the CelebA identity number).",
    license="other",
    license_name="celeba-non-commercial",
    license_link="https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
    terms="CelebA is available for non-commercial research purposes only; see the agreement on the project page.",
    homepage="https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
    citation="""@inproceedings{liu2015faceattributes,
  title     = {Deep Learning Face Attributes in the Wild},
  author    = {Liu, Ziwei and Luo, Ping and Wang, Xiaogang and Tang, Xiaoou},
  booktitle = {IEEE International Conference on Computer Vision (ICCV)},
  year      = {2015}
}""",
    task_categories=("image-classification",),
    tags=("faces", "face-recognition"),
)

LFW = CardInfo(
    pretty_name="Labeled Faces in the Wild (LFW)",
    description="LFW photos (250x250) grouped by person (`identity` is the person's name).",
    license="other",
    license_name="lfw-research",
    license_link="https://vis-www.cs.umass.edu/lfw/",
    terms="Provided by UMass Amherst for research use; see the project page.",
    homepage="https://vis-www.cs.umass.edu/lfw/",
    citation="""@techreport{huang2007lfw,
  title       = {Labeled Faces in the Wild: A Database for Studying Face Recognition in Unconstrained Environments},
  author      = {Huang, Gary B. and Ramesh, Manu and Berg, Tamara and Learned-Miller, Erik},
  institution = {University of Massachusetts, Amherst},
  number      = {07-49},
  year        = {2007}
}""",
    task_categories=("image-classification",),
    tags=("faces", "face-recognition"),
)

CFP = CardInfo(
    pretty_name="CFP: Celebrities in Frontal-Profile",
    description=("CFP photos (loose face crops) of celebrities, 10 frontal and 4 full-profile per identity, with a "
                 "`pose` column (frontal / profile); the official FF/FP verification folds are read by "
                 "`hf_fiqa.data.read_cfp_pairs`."),
    license="other",
    license_name="cfp-research",
    license_link="http://www.cfpw.io/",
    terms="CFP is released for research use only; see the project page.",
    homepage="http://www.cfpw.io/",
    citation="""@inproceedings{sengupta2016cfp,
  title     = {Frontal to Profile Face Verification in the Wild},
  author    = {Sengupta, Soumyadip and Chen, Jun-Cheng and Castillo, Carlos and Patel, Vishal M. and
               Chellappa, Rama and Jacobs, David W.},
  booktitle = {IEEE Winter Conference on Applications of Computer Vision (WACV)},
  year      = {2016}
}""",
    task_categories=("image-classification",),
    tags=("faces", "face-recognition", "pose"),
)

IDENTITY_FOLDER = CardInfo(
    pretty_name="Face photos by identity",
    description="Photos grouped by identity, converted with hf-fiqa from a folder or path,identity CSV.",
    license="other",
    license_name="see-source",
    terms="Fill in the licence of the photos before publishing.",
    citation="",
    task_categories=("image-classification",),
    tags=("faces",),
)

CARDS: dict[str, CardInfo] = {
    "koniq10k": KONIQ10K,
    "tid2013": TID2013,
    "ffhq": FFHQ,
    "ms1m": MS1M,
    "kface": KFACE,
    "celeba": CELEBA,
    "lfw": LFW,
    "cfp": CFP,
    "identity-folder": IDENTITY_FOLDER,
}
