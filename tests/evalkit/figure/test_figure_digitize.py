"""The efficiency-figure digitizer (evalkit/figure/digitize.py): it reproduces the committed values from the
committed PNG, the figure's printed ratio labels agree with the digitized ratios within their uncertainty, and on
a figure drawn here with known values (a linear and a log axis) it recovers every value within its half-width."""
from __future__ import annotations

import dataclasses
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from evalkit.core.errors import FieldError  # noqa: E402
from evalkit.figure import digitize as D  # noqa: E402


@pytest.fixture(scope="module")
def fresh():
    spec = D.load_spec()
    return spec, D.digitize(D.PAPER_DIR / spec.file, spec)


def test_reproduces_committed_values(fresh):
    spec, res = fresh
    committed = D.read()
    assert committed["sha256"] == spec.source.sha256 == res["sha256"]
    assert D.compare(committed, res) == []
    # the comparison itself sees a one-pixel move of one marker
    moved = {**res, "markers": [dict(m) for m in res["markers"]]}
    moved["markers"][3]["y_px"] += 1.0
    assert D.compare(committed, moved) == ["markers[3].y_px: 722.81 vs 723.81"]


def test_every_marker_found_where_its_category_is(fresh):
    _, res = fresh
    assert len(res["markers"]) == 24 and len(res["panels"]) == 4
    for m in res["markers"]:
        assert abs(m["dx_category_px"]) < 2.0, m          # the marker sits on its category centre
        assert 1.0 <= m["u_px"] <= 2.5, m                  # a pixel or two, never a silent 0
    for p in res["panels"]:
        assert max(abs(r) for r in p["residual_px"]) == p["u_cal_px"] < 1.0   # the gridlines are uniform to 1 px
    # the same quantity plotted in two panels (512^2 / 17 s; 1024^2 / 17 s = 512^2 / 68 s, the same tokens)
    by = {(m["panel"], m["model"], m["category"]): m for m in res["markers"]}
    for model in ("dit", "lingen"):
        for a, b in ((("flops_resolution", "512², 17s"), ("flops_length", "512², 17s")),
                     (("flops_resolution", "1024², 17s"), ("flops_length", "512², 68s")),
                     (("latency_resolution", "512², 17s"), ("latency_length", "512², 17s"))):
            ma, mb = by[(a[0], model, a[1])], by[(b[0], model, b[1])]
            assert abs(ma["value"] - mb["value"]) <= ma["u_value"] + mb["u_value"], (model, a, b)


def test_printed_ratio_labels_agree_with_the_digitized_ratios():
    """Recomputed here from the committed markers (not from the file's own `agrees`): the interval of DiT / LinGen
    from the values' half-widths overlaps the printed label's rounding interval, for all 12 labels."""
    vals = D.read()
    by = {(m["panel"], m["model"], m["category"]): m for m in vals["markers"]}
    texts = []
    for lab in vals["labels"]:
        d, g = by[(lab["panel"], "dit", lab["category"])], by[(lab["panel"], "lingen", lab["category"])]
        lo = max(d["value"] - d["u_value"], 0) / (g["value"] + g["u_value"])
        hi = (d["value"] + d["u_value"]) / (g["value"] - g["u_value"]) if g["value"] > g["u_value"] else math.inf
        num = lab["text"].rstrip("×x")
        half = 0.5 * 10 ** -(len(num.split(".")[1]) if "." in num else 0)
        assert lo <= float(num) + half and hi >= float(num) - half, (lab, lo, hi)
        assert lab["agrees"]
        texts.append(lab["text"])
    assert texts == ["1.1×", "2.0×", "3.6×", "2×", "5×", "15×", "2.0×", "3.9×", "11.5×", "5×", "8×", "15×"]


# ---- a figure with known values ---------------------------------------------------------------------------------
TRUTH = {"lin": {"dit": [120.0, 480.0, 910.0], "lingen": [60.0, 210.0, 400.0]},
         "log": {"dit": [30.0, 400.0, 7000.0], "lingen": [20.0, 150.0, 900.0]}}


def _draw(path):
    blue, green, grey = (78 / 255, 149 / 255, 217 / 255), (78 / 255, 167 / 255, 46 / 255), (116 / 255,) * 3
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=200)
    panels = (("lin", [0, 200, 400, 600, 800, 1000]), ("log", [10, 100, 1000, 10000, 100000]))
    for ax, (scale, ticks) in zip(axes, panels):
        for name, colour, marker in (("dit", blue, "o"), ("lingen", green, "D")):
            ax.plot([0, 1, 2], TRUTH[scale][name], "-", marker=marker, color=colour, mfc="white", mec=colour, ms=11,
                    mew=2.2, lw=2.5, label=name, zorder=3, clip_on=False)
        if scale == "log":
            ax.set_yscale("log")
        ax.set_ylim(ticks[0], ticks[-1])
        ax.set_yticks(ticks)
        ax.minorticks_off()
        ax.set_xlim(-0.5, 2.5)
        ax.set_xticks([0, 1, 2], ["a", "b", "c"])
        ax.yaxis.grid(True, color="#e8e8e8", lw=1.5)
        for s in ax.spines.values():
            s.set_color("black")
            s.set_linewidth(1.5)
        leg = ax.legend(loc="upper left", fontsize=13, fancybox=False, framealpha=1, borderpad=1.0)
        leg.get_frame().set_edgecolor(grey)
    fig.savefig(path)
    plt.close(fig)


def _spec():
    base = D.load_spec()
    cats = tuple(D.CategorySpec(label=c, height=512, width=512, duration_s=17) for c in "abc")
    panels = (D.PanelSpec(id="lin", quantity="latency_s", y_label="", y_ticks=(0, 200, 400, 600, 800, 1000),
                          categories=cats, labels=(D.LabelSpec(category=2, text="2.3x"),)),
              D.PanelSpec(id="log", quantity="tflop_per_step", y_label="", y_scale="log",
                          y_ticks=(10, 100, 1000, 10000, 100000), categories=cats,
                          labels=(D.LabelSpec(category=2, text="7.8x"),)))
    return dataclasses.replace(base, panels=panels)


def test_recovers_known_values_on_linear_and_log_axes(tmp_path):
    png = tmp_path / "known.png"
    _draw(png)
    res = D.digitize(png, _spec())
    assert len(res["markers"]) == 12
    panels = {p["id"]: p for p in res["panels"]}
    for m in res["markers"]:
        truth = TRUTH[m["panel"]][m["model"]]["abc".index(m["category"])]
        assert abs(m["value"] - truth) <= m["u_value"], (m, truth)
        assert m["u_px"] <= 2.0, m      # a real half-width: one to two pixels, not a vacuous one
        p = panels[m["panel"]]          # and close in fact: within a pixel
        err_px = (math.log10(m["value"] / truth) * p["px_per_decade"] if p["y_scale"] == "log"
                  else (m["value"] - truth) * p["px_per_unit"])
        assert abs(err_px) <= 1.0, (m, truth, err_px)
    assert [lab["agrees"] for lab in res["labels"]] == [True, True]        # 910/400 = 2.3, 7000/900 = 7.8
    assert res["panels"][1]["px_per_decade"] is not None and res["panels"][1]["px_per_unit"] is None


def test_spec_errors_name_the_field(tmp_path):
    png = tmp_path / "known.png"
    _draw(png)
    spec = _spec()
    wrong = dataclasses.replace(spec, panels=(dataclasses.replace(spec.panels[0], y_ticks=(0, 500, 1000)),
                                              spec.panels[1]))
    with pytest.raises(FieldError, match=r"panels\.lin\.y_ticks: 3 ticks printed but 6 gridlines"):
        D.digitize(png, wrong)
    with pytest.raises(FieldError, match="2 plot frames"):
        D.digitize(png, dataclasses.replace(spec, panels=spec.panels[:1]))
    with pytest.raises(FieldError, match="png: .*not found"):
        D.digitize(tmp_path / "missing.png", spec)
    with pytest.raises(FieldError, match="is not a number followed by 'x'"):
        D._printed("about 2", "panels.lin")
