/* Classifies one image with a model packed by `autoprec pack`:
 *
 *   classify MODEL.apn IMAGE.pgm
 *
 * IMAGE is a binary greyscale PGM (P5, 8-bit) of the model's input size
 * (28 x 28 for the Fashion-MNIST zoo), scaled to [0, 1] as in training.
 * Prints the class with the highest score and every score. Exit 0, or 1
 * with one line on stderr. */
#include <stdio.h>
#include <stdlib.h>

#include "native/c_api.h"

static unsigned char* read_pgm(const char* path, int* width, int* height) {
  FILE* f = fopen(path, "rb");
  if (!f) return NULL;
  int maxval = 0;
  unsigned char* pixels = NULL;
  if (fscanf(f, "P5 %d %d %d", width, height, &maxval) == 3 && maxval == 255 && *width > 0 && *height > 0 &&
      fgetc(f) != EOF) {
    size_t n = (size_t)*width * (size_t)*height;
    pixels = malloc(n);
    if (pixels && fread(pixels, 1, n, f) != n) {
      free(pixels);
      pixels = NULL;
    }
  }
  fclose(f);
  return pixels;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s MODEL.apn IMAGE.pgm\n", argv[0]);
    return 1;
  }
  apn_model* model = apn_load(argv[1]);
  if (!model) {
    fprintf(stderr, "classify: %s\n", apn_last_error());
    return 1;
  }
  int width = 0, height = 0;
  unsigned char* pixels = read_pgm(argv[2], &width, &height);
  if (!pixels) {
    fprintf(stderr, "classify: %s is not an 8-bit binary PGM\n", argv[2]);
    apn_free(model);
    return 1;
  }
  if ((int64_t)width * height != apn_input_size(model)) {
    fprintf(stderr, "classify: the image has %d x %d pixels; the model takes %lld values\n", width, height,
            (long long)apn_input_size(model));
    free(pixels);
    apn_free(model);
    return 1;
  }
  float* input = malloc(sizeof(float) * (size_t)apn_input_size(model));
  float* scores = malloc(sizeof(float) * (size_t)apn_output_size(model));
  for (int64_t i = 0; i < apn_input_size(model); ++i) input[i] = pixels[i] / 255.0f;
  int status = 0;
  if (apn_run(model, input, 1, scores, apn_output_size(model)) < 0) {
    fprintf(stderr, "classify: %s\n", apn_last_error());
    status = 1;
  } else {
    int64_t best = 0;
    for (int64_t c = 1; c < apn_output_size(model); ++c)
      if (scores[c] > scores[best]) best = c;
    printf("class %lld\n", (long long)best);
    for (int64_t c = 0; c < apn_output_size(model); ++c) printf("%lld %.6f\n", (long long)c, scores[c]);
  }
  free(input);
  free(scores);
  free(pixels);
  apn_free(model);
  return status;
}
