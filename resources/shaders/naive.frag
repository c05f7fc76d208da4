varying vec4 v_color;
void main() {
    vec2 d = gl_PointCoord - 0.5;
    float a = v_color.a * exp(-8.0 * dot(d, d));
    gl_FragColor = vec4(v_color.rgb * a, a);
}
