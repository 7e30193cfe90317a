#!/usr/bin/env python3
"""tf.data (tensorflow-cpu 2.x) on the photo folder, as TensorFlow's guides write it:

  plain    list the files, shuffle each epoch, map(read_file + decode_and_crop_jpeg over the
           window tf.image.sample_distorted_bounding_box samples: the ImageNet preprocessing of
           TensorFlow's model garden, decoding only the window; resize to 224 (bilinear,
           antialias); random_flip_left_right; normalise; HWC -> CHW), batch(64), prefetch.
  cached   "Better performance with the tf.data API" (tensorflow.org/guide/data_performance,
           Caching): cache() after the expensive deterministic map, before the random ones.
           Here that map is read_file + decode_jpeg (the whole image: a crop sampled before the
           cache would repeat every epoch); cache() keeps the decoded images in memory, then
           shuffle, map(crop + resize + flip + normalise), batch, prefetch. Epoch 1 fills it.

map's num_parallel_calls = --threads, and the dataset's private thread pool holds --threads
threads (tf.data.Options.threading), so tf.data loads on the same number of threads as the
others; TensorFlow's own inter- and intra-op pools are set to --threads too. prefetch(AUTOTUNE)
as the guide recommends. Batches reach the loop as tf.Tensors (float32 NCHW, labels int64),
TensorFlow's equivalent of a torch tensor; nothing is copied out of them.
"""
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import harness
import tensorflow as tf

MEAN = [m * 255.0 for m in harness.MEAN]  # Python lists: a tf.constant here would start
STD = [s * 255.0 for s in harness.STD]    # TensorFlow before main() sets its thread pools


def crop_window(shape, seed):
    """RandomResizedCrop's window from tf.image's sampler, as TF's ImageNet preprocessing."""
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seed,
        min_object_covered=0.0, aspect_ratio_range=harness.RATIO, area_range=harness.SCALE,
        max_attempts=10, use_image_if_no_bounding_boxes=True)
    return begin, size


def finish(image, seed):
    """Resize the cropped window to 224, flip, normalise, to CHW."""
    image = tf.image.resize(image, [harness.SIZE, harness.SIZE], method="bilinear", antialias=True)
    image = tf.image.stateless_random_flip_left_right(image, seed=seed)
    image = (image - MEAN) / STD
    return tf.transpose(image, [2, 0, 1])


def main():
    args = harness.parse_args(__doc__, lambda p: p.add_argument(
        "--mode", choices=["plain", "cached"], default="plain"))
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    samples, classes = harness.list_samples(args.root)
    t0 = time.perf_counter()
    paths = tf.constant([p for p, _ in samples])
    labels = tf.constant([l for _, l in samples], tf.int64)
    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    counter = tf.data.Dataset.counter()  # one seed per sample per epoch, stateless ops

    if args.mode == "plain":
        def load(path, label, seed):
            data = tf.io.read_file(path)
            begin, size = crop_window(tf.io.extract_jpeg_shape(data), seed)
            window = tf.stack([begin[0], begin[1], size[0], size[1]])
            image = tf.cast(tf.io.decode_and_crop_jpeg(data, window, channels=3), tf.float32)
            return finish(image, seed), label
        ds = ds.shuffle(len(samples), seed=args.seed, reshuffle_each_iteration=True)
        ds = tf.data.Dataset.zip((ds, counter.map(lambda i: tf.stack([i, args.seed]))))
        ds = ds.map(lambda pl, s: load(pl[0], pl[1], s), num_parallel_calls=args.threads)
    else:
        def decode(path, label):
            return tf.io.decode_jpeg(tf.io.read_file(path), channels=3), label

        def augment(image, label, seed):
            begin, size = crop_window(tf.shape(image), seed)
            image = tf.cast(tf.slice(image, begin, size), tf.float32)
            return finish(image, seed), label
        ds = ds.map(decode, num_parallel_calls=args.threads).cache()
        ds = ds.shuffle(len(samples), seed=args.seed, reshuffle_each_iteration=True)
        ds = tf.data.Dataset.zip((ds, counter.map(lambda i: tf.stack([i, args.seed]))))
        ds = ds.map(lambda il, s: augment(il[0], il[1], s), num_parallel_calls=args.threads)
    ds = ds.batch(args.batch).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.threading.private_threadpool_size = args.threads
    ds = ds.with_options(options)
    open_seconds = time.perf_counter() - t0

    def epoch(_):
        return iter(ds)

    cache = None
    if args.mode == "cached":
        cache = {"mode": "memory", "note": "tf.data cache() of the decoded images, in memory"}
    harness.run(args, "tf.data" + (" + cache()" if args.mode == "cached" else ""),
                f"tf.data (tensorflow {tf.__version__}), {args.mode}: num_parallel_calls="
                f"{args.threads}, private_threadpool_size={args.threads}", samples, classes,
                epoch, open_seconds, {"tensorflow": tf.__version__}, cache=cache)


if __name__ == "__main__":
    main()
