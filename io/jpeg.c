/* JPEG through libjpeg-turbo, set up exactly as Pillow 9.4 sets it up, so the
 * pixels equal PIL's Image.open(f).convert('RGB') bit for bit (Debian's PIL
 * links this same libjpeg-turbo):
 *  - libjpeg's defaults: JDCT_ISLOW, fancy upsampling, block smoothing, full
 *    size (no DCT scaling), no override of the file's colour space;
 *  - output colour space from the component count, as PIL's SOF handler maps
 *    it: 1 -> grayscale (PIL "L", replicated to RGB), 3 -> JCS_RGB,
 *    4 -> JCS_CMYK (libjpeg turns YCCK into CMYK). PIL opens every 4-component
 *    JPEG as "CMYK;I" (Adobe's inverted polarity, marker or not) and then
 *    convert('RGB') applies Convert.c's cmyk2rgb; we do the same arithmetic.
 *
 * Failure policy:
 *  - libjpeg errors (error_exit) are errors; so is running out of data
 *    ("truncated JPEG data") in every mode: Pillow raises "image file is
 *    truncated" unless LOAD_TRUNCATED_IMAGES, even when only the EOI is missing;
 *  - libjpeg warnings ("Corrupt JPEG data: ...", emit_message level -1) are
 *    errors when strict, tolerated otherwise (as PIL tolerates them);
 *  - the header's size is checked against max_pixels before libjpeg allocates
 *    anything image-sized, and the scan count against max_scans while the
 *    scans are read (each progressive scan can make libjpeg walk the whole
 *    coefficient buffer again, so a crafted file could spin for minutes). */
#include <setjmp.h>
#include <stdio.h> /* jpeglib.h needs FILE and size_t first */
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h> /* the JERR_ codes */

#include "io/image_impl.h"

typedef struct jpeg_ctx {
  struct jpeg_decompress_struct cinfo;
  struct jpeg_error_mgr err;
  struct jpeg_source_mgr src;
  struct jpeg_progress_mgr progress;
  graft__decode_failure fail; /* what went wrong, and where to jump */
  const graft__decode_limits *lim;
  bool created;            /* jpeg_create_decompress ran: destroy it */
  uint8_t *px, *row;       /* output and CMYK scratch row: freed by the caller */
} jpeg_ctx;

/* Make a libjpeg call, remembering its name and line for the detail. */
#define JCALL(c, fn, args) GRAFT__DECODE_CALL(&(c)->fail, fn, args)

/* Fail: record s and the message, and longjmp back to decode(). */
#define bail(c, ...) graft__decode_bail(&(c)->fail, __VA_ARGS__)

/* libjpeg's message, without its own "Corrupt JPEG data: " prefix (ours is
 * lower-case and always present for warnings). */
static void bail_with_message(jpeg_ctx *c, graft_status s, const char *prefix) {
  char msg[JMSG_LENGTH_MAX];
  (*c->err.format_message)((j_common_ptr)&c->cinfo, msg);
  const char *m = msg;
  static const char theirs[] = "Corrupt JPEG data: ";
  if (strncmp(m, theirs, sizeof theirs - 1) == 0) m += sizeof theirs - 1;
  bail(c, s, "%s%s", prefix, m);
}

static void on_error_exit(j_common_ptr cinfo) {
  jpeg_ctx *c = cinfo->client_data;
  bool oom = cinfo->err->msg_code == JERR_OUT_OF_MEMORY;
  bail_with_message(c, oom ? GRAFT_ENOMEM : GRAFT_EFORMAT, oom ? "" : "invalid JPEG: ");
}

static void on_emit_message(j_common_ptr cinfo, int level) {
  jpeg_ctx *c = cinfo->client_data;
  if (level >= 0) return; /* trace messages */
  cinfo->err->num_warnings++;
  if (c->lim->strict) bail_with_message(c, GRAFT_EFORMAT, "corrupt JPEG data: ");
}

static void on_output_message(j_common_ptr cinfo) { (void)cinfo; } /* the library never prints */

/* The source is the whole file in memory: libjpeg asking for more means the
 * file ended early. (jpeg_mem_src would pad with a fake EOI and a warning.) */
static void src_init(j_decompress_ptr cinfo) { (void)cinfo; }
static void src_term(j_decompress_ptr cinfo) { (void)cinfo; }

static boolean src_fill(j_decompress_ptr cinfo) {
  bail((jpeg_ctx *)cinfo->client_data, GRAFT_EFORMAT, "truncated JPEG data");
}

static void src_skip(j_decompress_ptr cinfo, long n) {
  struct jpeg_source_mgr *src = cinfo->src;
  if (n <= 0) return;
  if ((unsigned long)n > src->bytes_in_buffer)
    bail((jpeg_ctx *)cinfo->client_data, GRAFT_EFORMAT, "truncated JPEG data");
  src->next_input_byte += n;
  src->bytes_in_buffer -= (size_t)n;
}

/* Called before each input step while scans are read (so at least once per
 * scan), and per output row: the place to cap the scan count. */
static void on_progress(j_common_ptr cinfo) {
  jpeg_ctx *c = cinfo->client_data;
  if (c->cinfo.input_scan_number > c->lim->max_scans)
    bail(c, GRAFT_ELIMIT, "JPEG has more than %d scans (the progressive scan limit)",
         c->lim->max_scans);
}

/* Pillow's "CMYK;I" unpacker (255 - v on every channel) then Convert.c's
 * cmyk2rgb: nk = 255 - k; out = CLIP8(nk - MULDIV255(c, nk)). With the
 * inversion folded in, nk is the raw K sample. */
static inline uint8_t cmyk_channel(int inv_c, int nk) {
  int t = inv_c * nk + 128;
  int v = nk - (((t >> 8) + t) >> 8);
  return (uint8_t)(v <= 0 ? 0 : v < 256 ? v : 255);
}

static void cmyk_row_to_rgb(const uint8_t *in, uint8_t *out, int w) {
  for (int x = 0; x < w; x++, in += 4, out += 3) {
    int nk = in[3];
    out[0] = cmyk_channel(255 - in[0], nk);
    out[1] = cmyk_channel(255 - in[1], nk);
    out[2] = cmyk_channel(255 - in[2], nk);
  }
}

/* Everything that can longjmp. Locals are not relied on after the jump: the
 * state that cleanup needs lives in *c. */
static graft_status decode(jpeg_ctx *c, const uint8_t *buf, size_t len) {
  if (setjmp(c->fail.jump)) return c->fail.status;

  struct jpeg_decompress_struct *ci = &c->cinfo;
  ci->err = jpeg_std_error(&c->err);
  c->err.error_exit = on_error_exit;
  c->err.emit_message = on_emit_message;
  c->err.output_message = on_output_message;
  ci->client_data = c;
  JCALL(c, jpeg_create_decompress, (ci));
  c->created = true;

  c->src.init_source = src_init;
  c->src.fill_input_buffer = src_fill;
  c->src.skip_input_data = src_skip;
  c->src.resync_to_restart = jpeg_resync_to_restart;
  c->src.term_source = src_term;
  c->src.next_input_byte = buf;
  c->src.bytes_in_buffer = len;
  ci->src = &c->src;
  c->progress.progress_monitor = on_progress;
  ci->progress = &c->progress;

  if (JCALL(c, jpeg_read_header, (ci, TRUE)) != JPEG_HEADER_OK)
    bail(c, GRAFT_EFORMAT, "JPEG has tables but no image");
  c->fail.call = NULL; /* the checks below are ours, not libjpeg's */

  graft_status s = graft__check_dims(ci->image_width, ci->image_height, c->lim->max_pixels);
  if (s != GRAFT_OK) bail(c, s, "%s", graft_detail());
  int comps = ci->num_components;
  if (comps == 1)
    ci->out_color_space = JCS_GRAYSCALE;
  else if (comps == 3)
    ci->out_color_space = JCS_RGB;
  else if (comps == 4)
    ci->out_color_space = JCS_CMYK;
  else
    bail(c, GRAFT_EUNSUPPORTED, "JPEG with %d components is not supported", comps);

  size_t w = ci->image_width, h = ci->image_height;
  c->px = malloc(w * h * 3);
  if (!c->px) bail(c, GRAFT_ENOMEM, "cannot allocate %zux%zu RGB pixels", w, h);
  if (comps == 4) {
    c->row = malloc(w * 4);
    if (!c->row) bail(c, GRAFT_ENOMEM, "cannot allocate a %zu-pixel row", w);
  }

  if (!JCALL(c, jpeg_start_decompress, (ci)))
    bail(c, GRAFT_EFORMAT, "jpeg_start_decompress suspended");
  if (ci->output_width != w || ci->output_height != h || ci->output_components != comps)
    bail(c, GRAFT_EFORMAT, "libjpeg output is %ux%u with %d components, expected %zux%zu with %d",
         ci->output_width, ci->output_height, ci->output_components, w, h, comps);

  while (ci->output_scanline < h) {
    size_t y = ci->output_scanline;
    uint8_t *dst = c->px + y * w * 3;
    JSAMPROW row = comps == 4 ? c->row : dst;
    if (JCALL(c, jpeg_read_scanlines, (ci, &row, 1)) != 1)
      bail(c, GRAFT_EFORMAT, "jpeg_read_scanlines returned no row");
    if (comps == 1) {
      /* gray to RGB in place, from the end so nothing is overwritten early */
      for (size_t x = w; x-- > 0;) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = dst[x];
    } else if (comps == 4) {
      cmyk_row_to_rgb(c->row, dst, (int)w);
    }
  }
  if (!JCALL(c, jpeg_finish_decompress, (ci)))
    bail(c, GRAFT_EFORMAT, "jpeg_finish_decompress suspended");
  return GRAFT_OK;
}

graft_status graft__jpeg_decode(const uint8_t *buf, size_t len, const graft__decode_limits *lim,
                                graft_image *out) {
  jpeg_ctx *c = calloc(1, sizeof *c);
  if (!c) return graft__fail(GRAFT_ENOMEM, "out of memory for the JPEG decoder");
  c->lim = lim;
  graft_status s = decode(c, buf, len);
  if (s == GRAFT_OK) {
    out->w = (int)c->cinfo.image_width;
    out->h = (int)c->cinfo.image_height;
    out->px = c->px;
  }
  if (c->created) jpeg_destroy_decompress(&c->cinfo);
  free(c->row);
  if (s != GRAFT_OK) {
    free(c->px);
    graft__decode_report(&c->fail, s, __FILE__);
  }
  free(c);
  return s;
}
