"""Pydantic shapes of the generate extension, for /docs. Each task validates its own parameters
(service/tasks/*); the examples here are sent as they are by tests/tasks/test_openapi_examples.py."""

from typing import Any

from pydantic import BaseModel, Field

from service.protocol.task_schemas import DIGIT, request_body
from service.tasks.diffusion import DiffusionParams, DiffusionStreamParams
from service.tasks.params import LatentParams
from service.tasks.text2img import TextToImageParams, TextToImageStreamParams
from service.tasks.translation import GenerateRequest as TranslationRequest
from service.tasks.vae import VaeParams

GENERATE_EXAMPLES = {
    "gan": {"summary": "gan, vae or flow: four samples", "value": {"num_samples": 4, "seed": 0}},
    "png": {"summary": "PNG per sample and a grid", "value": {"num_samples": 16, "seed": 1, "format": "png"}},
    "temperature": {"summary": "gan, vae or flow: cooler samples", "value": {"num_samples": 4, "seed": 0, "temperature": 0.7}},
    "diffusion": {"summary": "diffusion: 50 DDIM steps", "value": {"num_samples": 4, "seed": 0, "steps": 50, "sampler": "ddim"}},
    "diffusion_label": {
        "summary": "diffusion: the digit 3, guided",
        "value": {"num_samples": 4, "seed": 0, "steps": 50, "sampler": "ddim", "label": 3, "guidance": 2.0},
    },
    "text_to_image": {
        "summary": "text-to-image: four digits from a prompt",
        "value": {"num_samples": 4, "seed": 0, "prompt": "a thick seven", "guidance": 3.0},
    },
    "vae_interpolate": {
        "summary": "vae: from a digit to its mirror image in 8 steps",
        "value": {"num_samples": 8, "interpolate": [DIGIT, [DIGIT[r * 8 + 7 - c] for r in range(8) for c in range(8)]]},
    },
}
STREAM_EXAMPLES = {
    "diffusion": {
        "summary": "diffusion: watch 50 DDIM steps, an event every 10",
        "value": {"num_samples": 4, "seed": 0, "steps": 50, "sampler": "ddim", "every": 10, "format": "png"},
    },
    "gan": {"summary": "gan, vae or flow: one event per sample", "value": {"num_samples": 4, "seed": 0}},
    "text_to_image": {
        "summary": "text-to-image: watch a prompt take shape, an event every 10 steps",
        "value": {"num_samples": 4, "seed": 0, "prompt": "a thick seven", "steps": 50, "every": 10, "format": "png"},
    },
}



class GenerateResponse(BaseModel):
    model_name: str
    model_version: str
    seed: int = Field(description="send it back to get the same samples")
    samples: list[Any] = Field(description="array: (N, *shape) in raw units; png: a base64 PNG per sample")
    grid: str | None = Field(None, description="png: all samples in one base64 PNG")
    event: str | None = Field(None, description="streams: progress, sample or done")



GENERATE_BODY = request_body(
    GENERATE_EXAMPLES, [LatentParams, VaeParams, DiffusionParams, TextToImageParams, TranslationRequest]
)
STREAM_BODY = request_body(
    STREAM_EXAMPLES, [LatentParams, VaeParams, DiffusionStreamParams, TextToImageStreamParams, TranslationRequest]
)
