"""Tiny randomly initialised Hugging Face models, built from configs (no download), saved with save_pretrained."""

from __future__ import annotations

import json
from pathlib import Path

import torch

_CHARS = "abcdefghijklmnopqrstuvwxyz"


def clip_tokenizer(d: Path):
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in _CHARS:
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    d.mkdir(parents=True, exist_ok=True)
    (d / "vocab.json").write_text(json.dumps(vocab))
    (d / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt"), model_max_length=77)


def sd_inpaint_dir(d: Path) -> Path:
    """A tiny StableDiffusionInpaintPipeline (UNet 9 → 4 channels, VAE, CLIP text encoder) in ``d``."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    tok = clip_tokenizer(d / "_tok")
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=9, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, norm_num_groups=4, attention_head_dim=2)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=4, sample_size=32)
    te = CLIPTextModel(CLIPTextConfig(bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=16,
                                      intermediate_size=32, num_attention_heads=2, num_hidden_layers=1,
                                      vocab_size=len(tok), max_position_embeddings=77, projection_dim=16))
    pipe = StableDiffusionInpaintPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet,
                                          scheduler=PNDMScheduler(skip_prk_steps=True), safety_checker=None,
                                          feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(d / "sd")
    return d / "sd"


def blip2_dir(d: Path, num_query_tokens: int = 4) -> Path:
    """A tiny BLIP-2 (ViT + Q-Former + OPT) with its processor (character vocabulary) in ``d / "blip"``."""
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        Blip2QFormerConfig,
        Blip2VisionConfig,
        BlipImageProcessor,
        GPT2TokenizerFast,
        OPTConfig,
    )

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for ch in _CHARS + "Ġ":
        vocab[ch] = len(vocab)
    tok = GPT2TokenizerFast(vocab=vocab, merges=[], bos_token="</s>", eos_token="</s>", pad_token="<pad>",
                            unk_token="<unk>")
    proc = Blip2Processor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok,
                          num_query_tokens=num_query_tokens)
    n = len(proc.tokenizer)
    cfg = Blip2Config(
        vision_config=Blip2VisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, image_size=32, patch_size=8).to_dict(),
        qformer_config=Blip2QFormerConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                          num_attention_heads=2, encoder_hidden_size=16, vocab_size=n).to_dict(),
        text_config=OPTConfig(hidden_size=16, ffn_dim=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=n,
                              word_embed_proj_dim=16, max_position_embeddings=64, bos_token_id=1, eos_token_id=1,
                              pad_token_id=0).to_dict(),
        num_query_tokens=num_query_tokens, image_token_index=proc.tokenizer.convert_tokens_to_ids("<image>"))
    torch.manual_seed(0)
    Blip2ForConditionalGeneration(cfg).save_pretrained(d / "blip")
    proc.save_pretrained(d / "blip")
    return d / "blip"
