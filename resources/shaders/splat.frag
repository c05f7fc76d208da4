// Gaussian falloff with premultiplied alpha; blended back to front with
// glBlendFunc(ONE, ONE_MINUS_SRC_ALPHA). Alpha clamp 0.99 and the 1/255
// cut-off match the 3DGS rasteriser.
varying vec4 v_color;
varying vec4 v_conic;

void main() {
    // gl_PointCoord runs over the sprite with y down, like image rows, so
    // this is the fragment centre's offset from the projected mean in pixels.
    vec2 d = (gl_PointCoord - 0.5) * (2.0 * v_conic.w);
    float power = -0.5 * (v_conic.x * d.x * d.x + v_conic.z * d.y * d.y) - v_conic.y * d.x * d.y;
    float alpha = min(0.99, v_color.a * exp(power));
    if (power > 0.0 || alpha < 1.0 / 255.0) discard;
    gl_FragColor = vec4(v_color.rgb * alpha, alpha);
}
