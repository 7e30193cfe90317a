"""Bad input from Python: each has an exception naming the file, key, sample or plugin, and
Ctrl-C while waiting for a batch interrupts the loop without breaking the pipeline."""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import flowfeed
from conftest import REPO, photo_overrides

PHOTOS = REPO / "configs" / "photos.yaml"


def test_a_missing_config_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        flowfeed.Pipeline(tmp_path / "nope.yaml")


def test_a_mistyped_key_gets_a_suggestion(photos):
    with pytest.raises(ValueError, match=r"bach.*did you mean \"?batch"):
        flowfeed.Pipeline({"source": {"type": "image_folder", "root": str(photos)},
                           "pipeline": [{"type": "decode"}], "bach": {"size": 4}})


def test_a_bad_override_names_the_key(photos, tmp_path):
    with pytest.raises(ValueError, match=r"batch\.size"):
        flowfeed.Pipeline(PHOTOS, photo_overrides(photos, tmp_path, **{"batch.size": "many"}))


def test_a_missing_folder_names_it_when_the_pipeline_opens(tmp_path):
    pipe = flowfeed.Pipeline(PHOTOS, {"source.root": str(tmp_path / "gone")})
    with pytest.raises(FileNotFoundError, match="gone"):
        len(pipe)


@pytest.fixture
def photos_with_a_bad_file(photos, tmp_path):
    root = tmp_path / "photos"
    shutil.copytree(photos, root)
    first_class = sorted(d for d in root.iterdir() if d.is_dir())[0]
    good = sorted(first_class.iterdir())[0]
    (first_class / "zz-truncated.jpg").write_bytes(good.read_bytes()[:300])
    return root, first_class / "zz-truncated.jpg"


def test_a_corrupt_image_under_fail_names_the_file(photos_with_a_bad_file, tmp_path):
    root, bad = photos_with_a_bad_file
    overrides = photo_overrides(root, tmp_path, pipeline=[
        {"type": "decode", "on_error": "fail"}, {"type": "resize", "size": 32},
        {"type": "center_crop", "size": 32}], **{"cache.mode": "off"})
    pipe = flowfeed.Pipeline(PHOTOS, overrides, epochs=1)
    with pytest.raises(flowfeed.SampleError, match="zz-truncated.jpg"):
        for _ in pipe:
            pass


def test_a_corrupt_image_under_skip_is_reported(photos_with_a_bad_file, tmp_path):
    root, bad = photos_with_a_bad_file
    overrides = photo_overrides(root, tmp_path, pipeline=[
        {"type": "decode", "on_error": "skip"}, {"type": "resize", "size": 32},
        {"type": "center_crop", "size": 32}], **{"cache.mode": "off"})
    pipe = flowfeed.Pipeline(PHOTOS, overrides, epochs=1)
    assert sum(images.shape[0] for images, _ in pipe) == 120  # 121 files, one skipped
    skipped = pipe.stats()["epochs"][0]["skipped"]
    assert skipped["count"] == 1 and "zz-truncated.jpg" in str(skipped["samples"])


def test_plugins_load_from_python(photos, tmp_path, build_dir):
    plugin = build_dir / "plugins" / "grayscale.so"
    overrides = photo_overrides(photos, tmp_path, pipeline=[
        {"type": "decode"}, {"type": "grayscale", "channels": 1}, {"type": "resize", "size": 32},
        {"type": "center_crop", "size": 32}], **{"cache.mode": "off"})
    pipe = flowfeed.Pipeline(PHOTOS, overrides, plugins=[plugin], epochs=1)
    images, _ = next(iter(pipe))
    assert images.shape[1] == 1
    with pytest.raises(Exception, match="not_a_plugin.so"):
        flowfeed.Pipeline(PHOTOS, overrides, plugins=[build_dir / "test_plugins" / "not_a_plugin.so"])


def test_a_plugin_that_throws_names_it(photos, tmp_path, build_dir):
    # At registration: the load fails, naming the file.
    with pytest.raises(Exception, match="throws.so"):
        flowfeed.Pipeline(PHOTOS, photo_overrides(photos, tmp_path),
                          plugins=[build_dir / "test_plugins" / "throws.so"])
    # In a stage (test_flaky throws on every fifth sample), under on_error: fail.
    overrides = photo_overrides(photos, tmp_path, pipeline=[
        {"type": "decode"}, {"type": "test_flaky", "on_error": "fail"}], **{"cache.mode": "off"})
    pipe = flowfeed.Pipeline(PHOTOS, overrides, plugins=[build_dir / "test_plugins" / "flaky.so"],
                             epochs=1)
    with pytest.raises(flowfeed.Error, match="test_flaky"):
        for _ in pipe:
            pass


def test_ctrl_c_while_waiting_interrupts_and_the_pipeline_goes_on(photos, tmp_path):
    # In a child process: the signal goes to it alone.
    script = textwrap.dedent(f"""
        import os, signal, threading, torch, flowfeed
        pipe = flowfeed.Pipeline({str(REPO / 'configs' / 'photos.yaml')!r},
            {{"source.root": {str(photos)!r}, "cache.mode": "off", "threads": 1,
              "batch.size": 120}}, epochs=1)
        it = iter(pipe)
        # Opening, then a full-size decode of 120 photos on one thread: well over 0.1 s.
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            next(it)
            print("no interrupt")
        except KeyboardInterrupt:
            print("interrupted")
        n = sum(images.shape[0] for images, _ in it)
        print("then", n)
    """)
    env = dict(os.environ)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert "interrupted" in lines, r.stdout
    # The batch the interrupt abandoned is delivered next: nothing lost.
    assert r.stdout.strip().endswith("then 120"), r.stdout


def test_crash_report_names_the_stage_and_chains_to_faulthandler(photos, tmp_path, build_dir):
    # In a child process: it dies. faulthandler was there first, so it reports after ours.
    plugin = build_dir / "test_plugins" / "crash.so"
    script = textwrap.dedent(f"""
        import flowfeed
        flowfeed.install_crash_report()
        pipe = flowfeed.Pipeline({str(PHOTOS)!r}, {{"source.root": {str(photos)!r},
            "cache.mode": "off", "threads": 2, "batch.size": 16, "shuffle": False,
            "pipeline": [{{"type": "decode"}}, {{"type": "test_crash"}},
                         {{"type": "center_crop", "size": 32}}]}},
            plugins=[{str(plugin)!r}], epochs=1)
        for _ in pipe:
            pass
        print("no crash")
    """)
    env = dict(os.environ, FLOWFEED_TEST_CRASH="segv:5")
    r = subprocess.run([sys.executable, "-X", "faulthandler", "-c", script], capture_output=True,
                       text=True, timeout=120, env=env)
    assert r.returncode == -11, (r.returncode, r.stdout, r.stderr)
    marked = [line for line in r.stderr.splitlines() if "(got SIGSEGV)" in line]
    assert marked and f"stage 'test_crash' (type test_crash, plugin {plugin}) on sample 5 (" in marked[0], r.stderr
    assert "Fatal Python error: Segmentation fault" in r.stderr, r.stderr


def test_an_isolated_stage_that_crashes_costs_one_sample(photos, tmp_path, build_dir):
    # isolate: process from Python: the module finds flowfeed-stage-worker in the build folder;
    # the worker dies on sample 5, the interpreter does not.
    plugin = build_dir / "test_plugins" / "crash.so"
    script = textwrap.dedent(f"""
        import flowfeed
        pipe = flowfeed.Pipeline({str(PHOTOS)!r}, {{"source.root": {str(photos)!r},
            "cache.mode": "off", "threads": 2, "batch.size": 16, "shuffle": False,
            "pipeline": [{{"type": "decode"}}, {{"type": "test_crash", "isolate": "process"}},
                         {{"type": "center_crop", "size": 32}}]}},
            plugins=[{str(plugin)!r}], epochs=1)
        for _ in pipe:
            pass
        skipped = pipe.stats()["epochs"][0]["skipped"]["samples"]
        print("skipped", [(s["index"], s["reason"]) for s in skipped])
    """)
    env = dict(os.environ, FLOWFEED_TEST_CRASH="segv:5")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert "skipped [(5, " in r.stdout and "worker killed by SIGSEGV" in r.stdout, r.stdout
