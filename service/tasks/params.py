"""Request parameters of the task endpoints: strict pydantic models, errors that name the field.

Strict: a number sent as a string is a wrong type, not something to guess at. extra="forbid":
a misspelt parameter is an error, never silently ignored.
"""

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.errors import InvalidInput

P = TypeVar("P", bound=BaseModel)


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def validate(model: type[P], data: dict, task: str) -> P:
    """`model` from a request's JSON object, or InvalidInput naming each bad parameter."""
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        allowed = ", ".join(model.model_fields)
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown parameter '{where}' ({task} models take: {allowed})")
            else:
                problems.append(f"parameter '{where}': {err['msg']}")
        raise InvalidInput("; ".join(problems)) from None


Seed = Field(None, ge=0, lt=2**63, description="same seed, same request: identical samples; "
             "omitted: a random seed, returned in the response", examples=[0])


class GenerateParams(Params):
    """What every generative task takes."""

    num_samples: int = Field(1, ge=1, description="how many samples (at most the config's max_samples)")
    seed: int | None = Seed
    format: Literal["array", "png"] = Field(
        "array", description="array: samples in raw units; png: a base64 PNG per sample and a grid"
    )


class LatentParams(GenerateParams):
    """GAN, VAE and flow: latents drawn from N(0, temperature^2 I)."""

    temperature: float = Field(1.0, ge=0, le=10, description="scale of the latent noise (1: as trained)")


class PredictParams(Params):
    """KServe V1: {"instances": [...]}; each task adds its own parameters."""

    instances: list[Any] = Field(min_length=1, description="numbers, nested arrays, "
                                 '{"image_b64": ...} or {feature: value} objects')
