"""Make the six Market7 stand-in models, reproducibly.

The real Market7 pickles are not available, so this script trains faithful stand-ins:
the same estimator classes, the exact feature names and order from the model map
(through ``spec.toml``), realistic value ranges and missing values, and pickle sizes
close to the map's. Running it twice gives models with the same predictions (a test
retrains into a temporary folder and compares).

    python models/make_models.py               # rewrite the six pickles (and the reference data) here
    python models/make_models.py --out /tmp/x  # somewhere else

It also writes ``reference_snapshots.parquet``: the training snapshots the stand-ins were
fitted on, which ``spec.toml`` names as each model's ``reference``, so ``m7onnx convert``
stores a drift-monitoring profile of the training data in every bundled artifact.

It is also imported (by file path) by the tests, benchmarks and batch-scoring examples
for ``generate_snapshots``, the synthetic position-snapshot generator.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
SEED = 7

#: The SAFU training script picks its own indicator set (the caller reads it back from
#: ``feature_names_in_``). This is our choice: what a SAFU exit plausibly depends on:
#: how deep and how long the position has been under water, momentum of the coin and of
#: BTC, and volatility.
SAFU_FEATURES = [
    "step", "drawdown_pct", "safu_score", "rsi", "rsi_slope", "adx", "macd_histogram",
    "macd_lift", "atr_pct", "volume_ratio", "hours_in_trade", "ema50_distance_pct",
    "btc_rsi", "btc_adx", "btc_macd_histogram", "snapshot_max_drawdown",
]  # fmt: skip

BTC_STATUSES = ["bullish", "bearish", "neutral", None]


def generate_snapshots(n: int, *, seed: int = SEED) -> pd.DataFrame:
    """Synthetic Market7 position snapshots: every feature any of the six models reads.

    Ranges follow what the bot logs: oscillators in 0-100, drawdowns in percent (a
    positive number), integer DCA steps, 0/1 flags, minutes, prices on a log scale,
    a ``btc_status`` category that is sometimes absent, and NaN where an indicator
    or a snapshot series is not available yet (fresh positions, data gaps).
    """
    rng = np.random.default_rng(seed)
    u = rng.uniform
    step = rng.integers(0, 9, n)
    drawdown = np.round(rng.gamma(2.0, 4.0, n) + step * 1.5, 2)
    entry_score = np.round(u(20, 95, n), 1)
    current_score = np.clip(entry_score - drawdown * u(0.2, 1.2, n) + rng.normal(0, 8, n), 0, 100)
    rsi = np.clip(rng.normal(45, 15, n), 0, 100)
    adx = np.clip(rng.gamma(4.0, 6.0, n), 0, 100)
    macd_histogram = rng.normal(0, 0.02, n)
    btc_rsi = np.clip(rng.normal(50, 12, n), 0, 100)
    btc_macd = rng.normal(0, 40, n)
    status_idx = rng.choice(4, n, p=[0.35, 0.3, 0.25, 0.1])
    ema50 = np.exp(u(np.log(0.01), np.log(60_000), n))
    btc_ema200 = u(25_000, 95_000, n)
    df = pd.DataFrame(
        {
            "step": step,
            "entry_score": entry_score,
            "current_score": np.round(current_score, 1),
            "drawdown_pct": drawdown,
            "safu_score": np.round(np.clip(100 - drawdown * 2 + rng.normal(0, 10, n), 0, 100), 1),
            "macd_lift": rng.normal(0, 0.5, n),
            "macd_histogram": macd_histogram,
            "rsi": rsi,
            "rsi_slope": rng.normal(0, 2.5, n),
            "adx": adx,
            "confidence_score": u(0, 1, n),
            "recovery_odds": u(0, 1, n),
            "tp1_shift": np.round(rng.exponential(0.8, n), 2),
            "safu_good_but_zombie": (u(0, 1, n) < 0.08).astype(np.int64),
            "zombie_tagged": (u(0, 1, n) < 0.1).astype(np.int64),
            "snapshot_score_trend": rng.normal(-0.5, 2.0, n),
            "snapshot_rsi_trend": rng.normal(0, 1.5, n),
            "snapshot_max_drawdown": drawdown + rng.gamma(1.5, 2.0, n),
            "snapshot_min_score": np.clip(current_score - rng.gamma(2.0, 4.0, n), 0, 100),
            "snapshot_min_rsi": np.clip(rsi - rng.gamma(2.0, 5.0, n), 0, 100),
            "snapshot_time_to_max_drawdown_min": rng.integers(0, 7 * 24 * 60, n),
            "atr_pct": rng.gamma(2.0, 1.2, n),
            "volume_ratio": rng.lognormal(0, 0.5, n),
            "hours_in_trade": np.round(rng.gamma(1.5, 30, n), 1),
            "ema50_distance_pct": rng.normal(-2, 6, n),
            "btc_rsi": btc_rsi,
            "btc_adx": np.clip(rng.gamma(4.0, 6.0, n), 0, 100),
            "btc_macd_histogram": btc_macd,
            "btc_status": pd.array([BTC_STATUSES[i] for i in status_idx], dtype=object),
            "ind_ema50": ema50,
            "ind_rsi": rsi,
            "ind_adx": adx,
            "ind_atr": ema50 * rng.gamma(2.0, 0.01, n),
            "ind_stoch_rsi_k": u(0, 100, n),
            "ind_stoch_rsi_d": u(0, 100, n),
            "ind_macd": ema50 * rng.normal(0, 0.01, n),
            "ind_macd_signal": ema50 * rng.normal(0, 0.01, n),
            "ind_macd_hist": macd_histogram * ema50,
            "ind_macd_hist_prev": macd_histogram * ema50 + ema50 * rng.normal(0, 0.002, n),
            "ind_macd_lift": rng.normal(0, 0.5, n),
            "btc_ema_50": btc_ema200 * u(0.9, 1.1, n),
            "btc_ema_200": btc_ema200,
            "btc_market_condition_num": np.array([1, -1, 0, 0])[status_idx],
        }
    )
    # Data gaps: snapshot series of positions younger than one snapshot, and BTC
    # indicators when the BTC feed lags.
    young = u(0, 1, n) < 0.06
    for col in ("snapshot_score_trend", "snapshot_rsi_trend", "snapshot_min_rsi"):
        df.loc[young, col] = np.nan
    lag = u(0, 1, n) < 0.03
    for col in ("btc_rsi", "btc_adx", "btc_macd_histogram"):
        df.loc[lag, col] = np.nan
    df.loc[u(0, 1, n) < 0.02, "rsi_slope"] = np.nan
    return df


def btc_one_hot(status: pd.Series) -> pd.DataFrame:
    """The spend callers' encoding, for training: absent status counts as "nan"."""
    s = status.fillna("nan").astype(str)
    return pd.DataFrame(
        {f"btc_status_{k}": (s == k).astype(np.float64) for k in ("bullish", "bearish", "neutral", "nan")}
    )


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def labels(df: pd.DataFrame, *, seed: int = SEED) -> dict[str, np.ndarray]:
    """Plausible noisy rules for each target. NaN inputs count as neutral."""
    rng = np.random.default_rng(seed + 1)
    f = df.fillna({c: 0.0 for c in df.columns if c != "btc_status"})
    bull = (df["btc_status"] == "bullish").to_numpy()
    bear = (df["btc_status"] == "bearish").to_numpy()
    noise = lambda s: rng.normal(0, s, len(df))  # noqa: E731
    recover = (
        0.04 * (f.current_score - 50)
        - 0.09 * f.drawdown_pct
        + 0.03 * (50 - f.rsi)
        + 0.6 * f.macd_lift
        + 0.15 * f.snapshot_score_trend
        - 0.35 * f.step
        + 0.02 * f.safu_score
        - 1.2 * f.safu_good_but_zombie
        + noise(1.0)
    )
    confident = (
        0.05 * (f.entry_score - 55)
        + 0.03 * (f.adx - 25)
        + 25 * f.macd_histogram
        + 0.2 * f.rsi_slope
        - 0.05 * f.drawdown_pct
        + 0.1 * f.snapshot_rsi_trend
        + noise(1.0)
    )
    spend = np.clip(
        25 + 6 * f.step + 0.8 * f.drawdown_pct + 40 * f.recovery_odds + 25 * f.confidence_score
        - 30 * f.zombie_tagged + 12 * bull - 15 * bear - 0.2 * (f.btc_rsi - 50) + noise(8.0),
        0, None,
    )  # fmt: skip
    safu_exit = (
        0.08 * (f.drawdown_pct - 15)
        - 0.03 * f.safu_score
        + 0.5 * f.atr_pct
        + 0.01 * f.hours_in_trade
        - 0.02 * (f.btc_rsi - 50)
        - 0.1 * f.ema50_distance_pct
        + noise(1.0)
    )
    legacy = (
        0.05 * (50 - f.ind_rsi)
        + 0.03 * (f.ind_stoch_rsi_k - f.ind_stoch_rsi_d)
        + 0.8 * f.ind_macd_lift
        + 0.4 * f.btc_market_condition_num
        + noise(1.0)
    )
    draw = lambda z: (rng.uniform(0, 1, len(df)) < _sigmoid(np.asarray(z))).astype(np.int64)  # noqa: E731
    return {
        "recover": draw(recover),
        "confident": draw(confident),
        "spend": np.asarray(spend, dtype=np.float64),
        "safu_exit": draw(safu_exit),
        "legacy": draw(legacy),
    }


@dataclass(frozen=True)
class Recipe:
    """How one stand-in is trained. Sizes are tuned to the map's pickle sizes."""

    name: str
    kind: str  # "classifier" | "regressor"
    label: str
    n_estimators: int
    max_depth: int


RECIPES = [
    Recipe("xgb_recovery_model", "classifier", "recover", 66, 4),
    Recipe("xgb_confidence_model", "classifier", "confident", 92, 4),
    Recipe("xgb_spend_model", "regressor", "spend", 120, 4),
    Recipe("xgb_dca_spend_model", "regressor", "spend", 120, 4),
    Recipe("xgb_model", "classifier", "legacy", 88, 4),
    Recipe("safu_exit_model", "classifier", "safu_exit", 97, 4),
]

N_TRAIN = 20_000
#: the training snapshots, as reference data for the monitoring profiles (spec.toml: reference)
REFERENCE_FILE = "reference_snapshots.parquet"


def feature_table(df: pd.DataFrame) -> pd.DataFrame:
    """All snapshot columns plus the spend models' one-hot columns."""
    return pd.concat([df.drop(columns=["btc_status"]), btc_one_hot(df["btc_status"])], axis=1)


def model_features(name: str, spec: dict) -> list[str]:
    entry = spec["models"][name]
    if "features" in entry:
        return list(entry["features"])
    if entry.get("features_from") == "model":
        return list(SAFU_FEATURES)
    return json.loads((HERE / entry["features_from"]).read_text())


def train(recipe: Recipe, spec: dict, data: pd.DataFrame, y: dict[str, np.ndarray]):
    import xgboost as xgb

    cols = model_features(recipe.name, spec)
    params = dict(
        n_estimators=recipe.n_estimators, max_depth=recipe.max_depth, learning_rate=0.08,
        subsample=0.9, colsample_bytree=0.9, tree_method="hist", random_state=SEED, n_jobs=1,
    )  # fmt: skip
    cls = xgb.XGBClassifier if recipe.kind == "classifier" else xgb.XGBRegressor
    model = cls(**params)
    # Fitted on a DataFrame, as the Market7 training scripts do: the model then carries
    # its column names (feature_names_in_), which SAFU's caller reads back.
    model.fit(data[cols], y[recipe.label])
    return model


def load_spec() -> dict:
    import tomllib

    return tomllib.loads((HERE / "spec.toml").read_text())


def reference_table(snaps: pd.DataFrame) -> pd.DataFrame:
    """The snapshots as the models see them: numbers as float32 (what the runtime feeds the graphs), ids and
    flags as integers, ``btc_status`` as strings with null where absent. About 3 MB of Parquet."""
    out = snaps.copy()
    for c in out.columns:
        if out[c].dtype == np.float64:
            out[c] = out[c].astype(np.float32)
    out["btc_status"] = out["btc_status"].astype(object)
    return out


def make_all(out_dir: Path, *, verbose: bool = True) -> list[Path]:
    import joblib

    spec = load_spec()
    snaps = generate_snapshots(N_TRAIN)
    data = feature_table(snaps)
    y = labels(snaps)
    out_dir.mkdir(parents=True, exist_ok=True)
    reference = out_dir / REFERENCE_FILE
    reference_table(snaps).to_parquet(reference, index=False, compression="zstd")
    written = [reference]
    for recipe in RECIPES:
        model = train(recipe, spec, data, y)
        path = out_dir / spec["models"][recipe.name]["source"]
        joblib.dump(model, path)
        written.append(path)
        if verbose:
            print(f"{path.name:28s} {path.stat().st_size / 1024:6.0f} KB")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: models/)")
    make_all(parser.parse_args().out)


if __name__ == "__main__":
    main()
