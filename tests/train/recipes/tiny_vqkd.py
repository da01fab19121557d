"""A seconds-long VQ-KD run for tests: 32-pixel images, 8-pixel patches (4 × 4 codes), a
32-wide 2-block encoder, 32 codes of width 8, and a fixed random-feature teacher (the
registered ``test_beit_tiny`` with random weights). Not a reproduction of anything."""

from beitv2_zoo.train.config import VQKDRecipe

RECIPE = VQKDRecipe(
    name="tiny_vqkd",
    model="test_vqkd_tiny",
    img_size=32,
    patch_size=8,
    embed_dim=32,
    depth=2,
    num_heads=2,
    teacher="test_beit_tiny",
    teacher_weights="random",
    num_codes=32,
    code_dim=8,
    decoder_depth=1,
    kmeans_init=True,
    dead_code_restart=True,
    crop_scale=(0.5, 1.0),
    mean=(0.0, 0.0, 0.0),
    std=(1.0, 1.0, 1.0),
    epochs=2,
    warmup_epochs=0,
    batch_size=8,
    lr=2e-3,
    min_lr=1e-4,
    weight_decay=1e-4,
    betas=(0.9, 0.99),
    num_workers=0,
    log_interval=1,
    save_interval=100,
    seed=0,
)
