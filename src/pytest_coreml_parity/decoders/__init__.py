"""Causal LMs out of the box: recipes for the KV cache, and greedy generation parity.

A test whose ``torch_model`` is a transformers causal LM (``*ForCausalLM``,
``GPT2LMHeadModel``) is converted through a wrapper the plugin builds
(:mod:`.wrappers`), chosen by the ``coreml_decoder`` fixture (:mod:`.recipe`);
:func:`~.generation.assert_generation` decodes greedily on both sides. See
docs/decoders.md.
"""
