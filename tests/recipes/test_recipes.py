"""Recipe loading: shipped recipes validate, typos name the file and the dotted field."""

from __future__ import annotations

from pathlib import Path

import pytest

import seglab
from seglab.errors import ConfigError
from seglab.recipes import list_recipes, load_recipe, model_kwargs, recipes_for


@pytest.mark.parametrize("name", list_recipes())
def test_shipped_recipe_loads_and_builds(name: str) -> None:
    recipe = load_recipe(name)
    assert recipe.source, f"{name}: say where the values come from"
    if recipe.published and recipe.published.table == 5 and recipe.model.name not in seglab.list_models():
        pytest.skip(f"{name}: instance model {recipe.model.name!r} is registered in a later issue")
    assert recipe.model.name in seglab.list_models()
    import torch

    kwargs = model_kwargs(recipe)
    if isinstance(kwargs.get("proposer"), str) and not Path(kwargs["proposer"]).exists():
        kwargs["proposer"] = bench_proposer_spec(kwargs["proposer"])
    with torch.device("meta"):
        seglab.create_model(recipe.model.name, num_classes=2, **kwargs)


def bench_proposer_spec(path: str) -> dict:
    """A proposer folder of `seglab bench --train` (runs/bench/<model>/final) not trained here: the spec of
    that model's CPU recipe, which builds the same architecture."""
    from seglab.bench import cpu_recipe_for

    folder = Path(path)
    assert folder.name == "final" and folder.parent.name in seglab.list_models(), path
    proposer_recipe = load_recipe(cpu_recipe_for(folder.parent.name))
    return {"model": folder.parent.name, "num_classes": 4, "kwargs": model_kwargs(proposer_recipe)}


def test_recipes_for_finds_recipes_through_their_base() -> None:
    assert "unet_isbi2012_cpu" in recipes_for("unet")
    assert "unet_camvid_cpu" in recipes_for("unet")  # model named in the file, data/optim from its base
    assert "_camvid_cpu_budget" not in list_recipes()  # shared bases are not recipes of their own
    assert recipes_for("no_such_model") == []


def test_every_semantic_model_has_a_camvid_cpu_recipe() -> None:
    missing = [m for m in seglab.list_models(task="semantic") if not any(
        r.endswith("_camvid_cpu") for r in recipes_for(m))]
    assert not missing, f"semantic models without a *_camvid_cpu recipe: {missing}"


def test_camvid_cpu_recipes_share_one_budget() -> None:
    """`seglab bench --train` compares models: everything but the model must be identical."""
    budget = load_recipe("_camvid_cpu_budget", overrides=["model.name=unet"]).model_dump()
    for name in list_recipes():
        if name.endswith("_camvid_cpu"):
            recipe = load_recipe(name).model_dump()
            for section in ("data", "optim", "schedule", "loss", "train", "eval"):
                assert recipe[section] == budget[section], f"{name}: {section} differs from _camvid_cpu_budget"


def test_unknown_field_names_file_and_dotted_field(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("model: {name: unet}\ndata: {dataset: synthetic}\noptim: {lr: 0.1, momentun: 0.9}\n")
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    assert str(path) in str(info.value) and "optim.momentun" in str(info.value)


def test_overrides_go_through_the_schema() -> None:
    recipe = load_recipe("unet_synthetic_cpu", overrides=["optim.lr=0.005", "data.crop_size=[64, 64]"])
    assert recipe.optim.lr == 0.005 and recipe.data.crop_size == (64, 64)
    with pytest.raises(ConfigError, match="optim.lr"):
        load_recipe("unet_synthetic_cpu", overrides=["optim.lr=-1"])
    with pytest.raises(ConfigError, match="schedule.stpes"):
        load_recipe("unet_synthetic_cpu", overrides=["schedule.stpes=10"])
    with pytest.raises(ConfigError, match="key=value"):
        load_recipe("unet_synthetic_cpu", overrides=["optim.lr"])


def test_base_is_one_level(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("model: {name: unet}\ndata: {dataset: synthetic}\noptim: {lr: 0.1}\n")
    (tmp_path / "b.yaml").write_text(f"base: {tmp_path / 'a.yaml'}\noptim: {{lr: 0.2}}\n")
    (tmp_path / "c.yaml").write_text(f"base: {tmp_path / 'b.yaml'}\n")
    recipe = load_recipe(tmp_path / "b.yaml")
    assert recipe.optim.lr == 0.2 and recipe.model.name == "unet"
    with pytest.raises(ConfigError, match="one level"):
        load_recipe(tmp_path / "c.yaml")


def test_unknown_recipe_suggests() -> None:
    with pytest.raises(ConfigError, match="unet_synthetic_cpu"):
        load_recipe("unet_synthetic")


def test_multistep_needs_milestones() -> None:
    with pytest.raises(ConfigError, match="milestones"):
        load_recipe("unet_synthetic_cpu", overrides=["schedule.policy=multistep"])
