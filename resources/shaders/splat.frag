#version 130
// Gaussian falloff with premultiplied alpha; blended back to front with
// glBlendFunc(ONE, ONE_MINUS_SRC_ALPHA). Alpha clamp 0.99 and the 1/255
// cut-off match the 3DGS rasteriser.
flat in vec4 v_color;
flat in vec3 v_conic;
flat in vec2 v_centre;

void main() {
    // Offset of the fragment centre from the projected mean in image pixels (y down).
    vec2 d = vec2(gl_FragCoord.x - v_centre.x, v_centre.y - gl_FragCoord.y);
    float power = -0.5 * (v_conic.x * d.x * d.x + v_conic.z * d.y * d.y) - v_conic.y * d.x * d.y;
    float alpha = min(0.99, v_color.a * exp(power));
    if (power > 0.0 || alpha < 1.0 / 255.0) discard;
    gl_FragColor = vec4(v_color.rgb * alpha, alpha);
}
