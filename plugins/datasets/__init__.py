"""Built-in datasets: `memory` (read whole: xor, spirals, digits, npz, csv, text, moby_dick) and `lazy`
(read a batch at a time: npy, image_folder)."""
