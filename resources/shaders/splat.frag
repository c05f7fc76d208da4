#version 130
// Gaussian falloff with premultiplied alpha; blended back to front with
// glBlendFunc(ONE, ONE_MINUS_SRC_ALPHA). Alpha clamp 0.99 and the 1/255
// cut-off match the 3DGS rasteriser.
flat in vec4 v_color;  // display colour, log2(opacity)
flat in vec3 v_conic;  // log2(e) x (-a/2, -b, -c/2) of the conic (a, b, c)
flat in vec2 v_centre;

void main() {
    // Offset of the fragment centre from the projected mean in image pixels (y down).
    vec2 d = vec2(gl_FragCoord.x - v_centre.x, v_centre.y - gl_FragCoord.y);
    // opacity * exp(-d^T conic d / 2) as a single exp2.
    float alpha = min(0.99, exp2(v_color.a + (v_conic.x * d.x + v_conic.y * d.y) * d.x + v_conic.z * d.y * d.y));
    if (alpha < 1.0 / 255.0) discard;
    gl_FragColor = vec4(v_color.rgb * alpha, alpha);
}
