/*
 * The password of the caller's private key, for WSS4J: Apache CXF's
 * WSS4JOutInterceptor asks a CallbackHandler named by `passwordCallbackClass`
 * (cxf-wss4j-out.properties).  Read from the environment, never from a file
 * kept with the code.
 */

import java.io.IOException;

import javax.security.auth.callback.Callback;
import javax.security.auth.callback.CallbackHandler;
import javax.security.auth.callback.UnsupportedCallbackException;

import org.apache.ws.security.WSPasswordCallback;

public final class KeystorePasswordCallback implements CallbackHandler {

    @Override
    public void handle(Callback[] callbacks) throws IOException, UnsupportedCallbackException {
        for (Callback callback : callbacks) {
            if (!(callback instanceof WSPasswordCallback)) {
                throw new UnsupportedCallbackException(callback);
            }
            WSPasswordCallback password = (WSPasswordCallback) callback;
            if (password.getUsage() != WSPasswordCallback.SIGNATURE) {
                throw new UnsupportedCallbackException(callback, "only the signing key's password");
            }
            String value = System.getenv("KEYSTORE_PASSWORD");
            if (value == null || value.isEmpty()) {
                throw new IOException("KEYSTORE_PASSWORD is not set in the environment");
            }
            password.setPassword(value);
        }
    }
}
