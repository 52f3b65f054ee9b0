"""The task classes, chosen from a model's config by a plain dict."""

from service.tasks.base import ServedModel
from service.tasks.generic import GenericModel

# Tasks whose endpoints are not built yet serve their graph's signature, like generic models.
TASK_CLASSES: dict[str, type[ServedModel]] = {
    "generic": GenericModel,
    "classification": GenericModel,
    "regression": GenericModel,
}


def model_class(task: str) -> type[ServedModel]:
    return TASK_CLASSES.get(task, GenericModel)
