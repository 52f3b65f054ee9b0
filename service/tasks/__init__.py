"""The task classes, chosen from a model's config by a plain dict."""

from service.tasks.base import ServedModel
from service.tasks.classification import ClassificationModel
from service.tasks.diffusion import DiffusionModel
from service.tasks.flow import FlowModel
from service.tasks.gan import GanModel
from service.tasks.generic import GenericModel
from service.tasks.node_classification import NodeClassificationModel
from service.tasks.regression import RegressionModel
from service.tasks.text2img import TextToImageModel
from service.tasks.translation import TranslationModel
from service.tasks.vae import VaeModel

TASK_CLASSES: dict[str, type[ServedModel]] = {
    "generic": GenericModel,
    "classification": ClassificationModel,
    "regression": RegressionModel,
    "gan": GanModel,
    "vae": VaeModel,
    "flow": FlowModel,
    "diffusion": DiffusionModel,
    "text-to-image": TextToImageModel,
    "translation": TranslationModel,
    "node-classification": NodeClassificationModel,
}


def model_class(task: str) -> type[ServedModel]:
    return TASK_CLASSES.get(task, GenericModel)
